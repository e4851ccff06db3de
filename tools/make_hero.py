"""Write the hero animation of the intro and the README (run after shipping a new writer; the GIF is committed).

    python tools/make_hero.py            # -> book/hero.gif

Two rows of digits writing themselves, all generated from noise by the shipped writer: 0-9 asked for by
label (classifier-free guidance at its default), twice, from two seeds. DDIM-50, on the CPU. (Videos
the writer invents without a label are read as a digit only about half the time: see RESULTS.md.)
"""

from pathlib import Path

import torch

import tinydiff
from tinydiff.viz import save_video

OUT = Path(__file__).resolve().parents[1] / "book" / "hero.gif"


def main() -> None:
    torch.set_num_threads(2)  # the GIF's pixels may depend on the thread count (float sums in another order)
    writer = tinydiff.pretrained("writer", device="cpu")
    rows = [writer.generate(10, digit=list(range(10)), steps=50, seed=seed) for seed in (0, 1)]
    print(f"wrote {save_video(torch.cat(rows), OUT, fps=8, scale=3, columns=10, hold_last=8)}")


if __name__ == "__main__":
    main()
