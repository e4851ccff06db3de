"""Check and measure tinydiff's CUDA paths on a GPU machine in about five minutes, printing as it goes.

    make gpu-check                                    # python tools/gpu_check.py
    python tools/gpu_check.py --data-root DIR --budget 300
    python tools/gpu_check.py --smoke                 # no GPU needed: tiny sizes, to test this script

Sections, each time-boxed (a failure or a timeout is printed, and the next section runs):
  machine    the device, torch, compute capability, the precision "auto" picks, TF32 settings
  train      training videos/s through the real loop (warm-up steps excluded): the default preset at
             batch 16 and 256 in the default precision and at 256 in fp32, the original at batch 16
  sample     DDIM-50 seconds for 16 and 256 videos with the shipped writer, fp32 and default precision
  agree      CPU vs CUDA on 64 held-out digits (DDIM-50): frame IoU against the true videos on each
             device and precision, and between the CPU's and the GPU's videos
  tests      pytest tests/test_cuda.py, and beside it the other unit tests (modules that need a
             missing optional package are left out and named; failures are rerun with the GPU hidden)
  notebooks  each chapter notebook's wall time, executed side by side with nbclient
  motion     (only when named, with a budget of its own: make gpu-motion) the shipped motion recipe in fp32,
             its steps planned from a timed probe to fill the section's time box, judged on 32 held-out
             sequences four times along the way (10 given, 10 predicted, DDIM-10): what a GPU run of the
             same recipe reaches (issue 26); its checkpoints go to $OUT/motion-gpu
A markdown summary goes to $OUT/gpu_check.md when OUT is set, else runs/gpu_check.md; it is rewritten
after every figure, so a run stopped early keeps what it measured. The pytest and notebook logs lie
beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import importlib.util
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tinydiff from this checkout, installed or not

import torch  # noqa: E402

OPTIONAL = ("diffusers", "nbformat", "nbclient", "nbval", "ipykernel", "ipywidgets", "IPython", "yaml", "xdist")
# What a test module that needs an optional package mentions (tinydiff.widgets needs ipywidgets, plots IPython).
MENTIONS = {"ipywidgets": r"\b(ipywidgets|widgets)\b", "IPython": r"\b(IPython|plots)\b"}


class TimeUp(BaseException):
    """A section ran past its time box (a BaseException, so that no `except Exception` swallows it)."""


@contextlib.contextmanager
def time_box(seconds: float):
    def ring(signum, frame):
        raise TimeUp(f"stopped by its time box of {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 1.0))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Report:
    """Figures by section, printed as they come and rewritten to a markdown file after each one."""

    def __init__(self, path: Path, header: list[str]):
        self.path, self.header, self.sections = path, header, {}

    def add(self, section: str, measure: str, value) -> None:
        print(f"  {measure}: {value}", flush=True)
        self.sections.setdefault(section, []).append((measure, str(value)))
        self.write()

    def write(self) -> None:
        lines = list(self.header)
        for section, rows in self.sections.items():
            lines += ["", f"## {section}", "", "| measure | value |", "| --- | --- |"]
            lines += [f"| {m} | {v.replace('|', '/').replace(chr(10), ' ')} |" for m, v in rows]
        self.path.write_text("\n".join(lines) + "\n")


@dataclass
class Context:
    args: argparse.Namespace
    report: Report
    out: Path  # where the summary and the logs go
    device: torch.device
    precision: str  # what "auto" resolves to on `device`
    started: float = field(default_factory=time.monotonic)
    section_end: float = 0.0  # monotonic time at which the running section's box closes
    failures: list[str] = field(default_factory=list)  # what failed: the run's exit code is 1 if any
    _digits: dict = field(default_factory=dict)

    @property
    def smoke(self) -> bool:
        return self.args.smoke

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def left(self) -> float:
        """Seconds left in the whole budget."""
        return self.args.budget - (time.monotonic() - self.started)

    def section_left(self) -> float:
        return self.section_end - time.monotonic()

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def digits(self, n: int):
        """The first n held-out digits ((n, 28, 28) uint8 numpy); synthetic ones when MNIST is not there."""
        if "all" not in self._digits:
            from tinydiff.data import load_mnist

            try:
                self._digits["all"] = load_mnist("heldout", root=self.args.data_root, download=False)[0].numpy()
                self._digits["source"] = "held-out digits"
            except Exception as error:  # noqa: BLE001 - any data problem: fall back, and say so
                print(f"  no held-out digits ({type(error).__name__}: {error}); using synthetic digits", flush=True)
                sys.path.insert(0, str(ROOT / "tests"))
                from conftest import synthetic_digits

                self._digits["all"] = synthetic_digits(1000, seed=0)[0]
                self._digits["source"] = "synthetic digits (no MNIST found)"
        return self._digits["all"][:n]


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:300] if text else ''}"


def run_section(ctx: Context, name: str, box: float, fn) -> None:
    seconds = min(box, ctx.left())
    print(f"\n== {name} (time box {seconds:.0f} s; {time.monotonic() - ctx.started:.0f} s into the run) ==",
          flush=True)
    if seconds < 5:
        ctx.report.add(name, "not run", "no time left in the budget")
        return
    started = time.monotonic()
    ctx.section_end = started + seconds
    try:
        with time_box(seconds + 15):  # the sections watch section_end themselves; this is the backstop
            fn(ctx)
    except TimeUp as error:
        ctx.report.add(name, "stopped", f"{error}; the figures above are what it finished")
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # noqa: BLE001 - report, and go on to the next section
        traceback.print_exc()
        sys.stdout.flush()
        ctx.report.add(name, "FAILED", first_line(error))
        ctx.failures.append(name)
    ctx.report.add(name, "section wall time", f"{time.monotonic() - started:.0f} s")


# -- machine ---------------------------------------------------------------------------------------


def version(module: str) -> str:
    if importlib.util.find_spec(module) is None:
        return "missing"
    names = {"yaml": "pyyaml", "xdist": "pytest-xdist", "IPython": "ipython"}
    try:
        return importlib.metadata.version(names.get(module, module))
    except importlib.metadata.PackageNotFoundError:
        return "present"


def section_machine(ctx: Context) -> None:
    add = lambda m, v: ctx.report.add("machine", m, v)  # noqa: E731
    add("python / torch / CUDA runtime", f"{platform.python_version()} / {torch.__version__} / {torch.version.cuda}")
    add("CPU cores (usable) / torch threads", f"{len(os.sched_getaffinity(0))} / {torch.get_num_threads()}")
    if ctx.cuda:
        props = torch.cuda.get_device_properties(ctx.device)
        add("GPU", f"{props.name}, {props.total_memory / 2**30:.0f} GiB, {props.multi_processor_count} SMs; "
                   f"{torch.cuda.device_count()} GPU(s) visible")
        add("compute capability", "%d.%d" % torch.cuda.get_device_capability(ctx.device))
        add("cuDNN", torch.backends.cudnn.version())
        add("torch's global TF32 switches, cuDNN / matmuls (tinydiff's fp32 turns them off)",
            f"{torch.backends.cudnn.allow_tf32} / {torch.backends.cuda.matmul.allow_tf32}")
    else:
        add("GPU", "none: torch sees no CUDA GPU" + (" (smoke run on the CPU)" if ctx.smoke else ""))
    add("precision 'auto' resolves to", ctx.precision)
    add("optional packages", ", ".join(f"{m} {version(m)}" for m in OPTIONAL))
    from tinydiff.data import load_mnist

    for split in ("train", "heldout"):
        try:
            add(f"MNIST {split} digits under {ctx.args.data_root}", len(load_mnist(split, root=ctx.args.data_root,
                                                                                    download=False)[0]))
        except Exception as error:  # noqa: BLE001
            add(f"MNIST {split} digits under {ctx.args.data_root}", f"not readable: {first_line(error)}")


# -- training throughput ---------------------------------------------------------------------------

def throughput(ctx: Context, name: str, batch: int, steps: int, precision: str, workdir: Path):
    """Videos/s of a preset through tinydiff.train (bench.training_throughput: steps after 3 warm-up
    steps), peak MiB, last loss.

    The rate comes from the checkpoint's elapsed_s, summed per step in the loop: each step reads its loss
    (one host sync), which waits for the previous step's backward and optimiser, so in steady state the
    sum over the timed steps is their GPU time.
    """
    from tinydiff.bench import training_throughput
    from tinydiff.checkpoint import load_checkpoint

    out = workdir / f"{batch}-{precision}"
    if ctx.cuda:
        torch.cuda.reset_peak_memory_stats(ctx.device)
    rate = training_throughput(name, out, ctx.args.data_root, batch, steps, str(ctx.device), precision)
    state = load_checkpoint(out / name / "checkpoint.pt")
    peak = torch.cuda.max_memory_allocated(ctx.device) / 2**20 if ctx.cuda else float("nan")
    assert state["precision"] == precision, (state["precision"], precision)
    return rate, peak, state["losses"][-1]


def section_train(ctx: Context) -> None:
    small, large = (2, 4) if ctx.smoke else (16, 256)
    steps = {small: 2 if ctx.smoke else 30, large: 2 if ctx.smoke else 15}
    runs = [("default", small, ctx.precision), ("default", large, ctx.precision), ("original", small, ctx.precision)]
    if ctx.precision != "fp32":
        runs.append(("default", large, "fp32"))
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, batch, precision in runs:
            if rates and ctx.section_left() < 10:
                ctx.report.add("train", f"{name}, batch {batch}, {precision}", "not measured: out of time")
                continue
            started = time.monotonic()
            rate, peak, loss = throughput(ctx, name, batch, steps[batch], precision, Path(tmp))
            rates[name, batch, precision] = rate
            memory = f", peak {peak:.0f} MiB" if ctx.cuda else ""
            ctx.report.add("train", f"videos/s, {name} preset, batch {batch}, {precision}",
                           f"{rate:.1f} ({steps[batch]} timed steps after 3; last loss {loss:.4f}{memory}; "
                           f"{time.monotonic() - started:.0f} s with set-up)")
    p = ctx.precision
    if ("default", small, p) in rates and ("original", small, p) in rates:
        ctx.report.add("train", f"speed ratio default / original, batch {small}, {p}",
                       f"{rates['default', small, p] / rates['original', small, p]:.1f}x")
    if p != "fp32" and ("default", large, p) in rates and ("default", large, "fp32") in rates:
        ctx.report.add("train", f"speed-up {p} over fp32, default preset, batch {large}",
                       f"{rates['default', large, p] / rates['default', large, 'fp32']:.2f}x")


# -- sampling time ---------------------------------------------------------------------------------


def section_sample(ctx: Context) -> None:
    from tinydiff import pretrained

    sizes, steps = ((2, 4), 3) if ctx.smoke else ((16, 256), 50)
    digits = ctx.digits(max(sizes))
    for precision in dict.fromkeys(["fp32", ctx.precision]):
        pipe = pretrained("writer", device=ctx.device, precision=precision)
        pipe.animate(digits[:sizes[0]], steps=2, seed=0)  # warm-up: CUDA context, cuDNN plans, the allocator
        for n in sizes:
            ctx.sync()
            started = time.perf_counter()
            videos = pipe.animate(digits[:n], steps=steps, seed=0)
            ctx.sync()
            seconds = time.perf_counter() - started
            finite = bool(torch.isfinite(videos).all())
            ctx.report.add("sample", f"DDIM-{steps}, {n} videos, {precision} on {ctx.device.type}",
                           f"{seconds:.2f} s ({n / seconds:.3g} videos/s){'' if finite else '; NON-FINITE output'}")


# -- the motion recipe on the GPU -------------------------------------------------------------------


def section_motion(ctx: Context) -> None:
    from tinydiff.checkpoint import load_checkpoint
    from tinydiff.classifier import pretrained_classifier
    from tinydiff.model import preset
    from tinydiff.motion_eval import evaluate, heldout_sequences, predictor, summary
    from tinydiff.motion_pipeline import MotionPipeline
    from tinydiff.registry import shipped
    from tinydiff.ship import train_config
    from tinydiff.train import train

    add = lambda m, v: ctx.report.add("motion", m, v)  # noqa: E731
    recipe = shipped("motion").recipe
    probe, sequences = (2, 2) if ctx.smoke else (100, 32)
    folder = Path(tempfile.mkdtemp(prefix="motion-smoke-")) if ctx.smoke else ctx.out / "motion-gpu"
    data, digits = heldout_sequences(sequences, 20, root=ctx.args.data_root)
    classifier = pretrained_classifier()

    def run(steps: int, until: int) -> tuple[int, float]:
        # The shipped recipe in fp32 on this device; `steps` plans its learning-rate schedule (a run may change
        # its plan when it resumes: steps is not part of the recipe that resuming checks).
        cfg = train_config("motion", folder, ctx.args.data_root, steps=steps, checkpoint_every=min(until, 250),
                           device=str(ctx.device), precision="fp32", threads=None)
        state = load_checkpoint(train(preset(recipe.preset), cfg, until=until, progress=False).checkpoint)
        return state["step"], state["elapsed_s"]

    def judge(step: int, seconds: float) -> None:
        pipe = MotionPipeline.from_checkpoint(folder / "checkpoint.pt", device=ctx.device, precision="fp32")
        s = summary(evaluate(predictor(pipe, 10), data, classifier, digits))
        add(f"step {step} ({seconds / 60:.1f} training min)",
            f"MSE {s['mse']:.1f}, SSIM {s['ssim']:.3f}, identity {s['identity_ratio']:.2f} of the truth's "
            f"({sequences} held-out sequences, DDIM-10)")

    # A probe of `probe` steps gives the step rate; then the run is planned to fill what is left of the box.
    started = time.monotonic()
    step, seconds = run(10 * probe, probe)
    judge(step, seconds)
    per_step, per_judge = seconds / max(step, 1), time.monotonic() - started - seconds
    judgements = 4
    steps = step + int((ctx.section_left() - judgements * (per_judge + 5) - 30) / per_step) if not ctx.smoke else 2 * probe
    add("plan", f"{steps} steps ({per_step * 1e3:.0f} ms a step in fp32 on {ctx.device.type}; shipped: {recipe.steps} "
                f"steps of {recipe.batch_size} on 2 CPU cores), judged {judgements} times")
    for k in range(1, judgements + 1):
        until = step + (steps - step) * k // judgements if k < judgements else steps
        if until <= step:
            continue
        step, seconds = run(steps, until)
        judge(step, seconds)


# -- CPU vs CUDA agreement -------------------------------------------------------------------------


def section_agree(ctx: Context) -> None:
    from tinydiff import pretrained
    from tinydiff.data import writing_videos
    from tinydiff.metrics import frame_iou

    n, chunk, steps = (4, 2, 3) if ctx.smoke else (64, 16, 50)
    digits = ctx.digits(n)
    truth = writing_videos(digits)
    starts = range(0, n, chunk)

    def animate(device, precision, first: int):
        pipe = pretrained("writer", device=device, precision=precision)
        return [pipe.animate(digits[i:i + chunk], steps=steps, seed=i) for i in starts[first:]]

    # The GPU's variants first (seconds), then the CPU chunk by chunk while the box allows.
    variants = {}
    if ctx.cuda:
        variants["CUDA fp32 (TF32 off: tinydiff.device)"] = animate(ctx.device, "fp32", 0)
        variants[f"CUDA {ctx.precision}"] = animate(ctx.device, ctx.precision, 0)
    else:  # smoke run: the CPU against itself, to exercise the code
        variants["CPU again (smoke run)"] = animate("cpu", "fp32", 0)
    cpu_pipe = pretrained("writer", device="cpu", precision="fp32")
    on_cpu, seconds = [], []
    for i in starts:
        if seconds and ctx.section_left() < 1.5 * max(seconds) + 5:
            break
        started = time.perf_counter()
        on_cpu.append(cpu_pipe.animate(digits[i:i + chunk], steps=steps, seed=i))
        seconds.append(time.perf_counter() - started)
    done = sum(len(v) for v in on_cpu)
    cpu = torch.cat(on_cpu)
    ctx.report.add("agree", "digits compared", f"{done} of {n} {ctx._digits['source']} (DDIM-{steps}, "
                                               f"seed = index of each chunk of {chunk})")
    ctx.report.add("agree", f"CPU fp32: seconds per {chunk} videos ({torch.get_num_threads()} threads)",
                   f"{sum(seconds) / len(seconds):.1f}")
    cpu_iou = frame_iou(cpu, truth[:done]).mean().item()
    ctx.report.add("agree", "frame IoU vs true videos, CPU fp32", f"{cpu_iou:.4f}")
    for label, videos in variants.items():
        videos = torch.cat(videos)[:done]
        iou = frame_iou(videos, truth[:done]).mean().item()
        ctx.report.add("agree", f"frame IoU vs true videos, {label}", f"{iou:.4f} ({iou - cpu_iou:+.4f} vs CPU)")
        between = frame_iou(videos, cpu)
        ctx.report.add("agree", f"frame IoU between CPU and {label} videos",
                       f"mean {between.mean().item():.4f}, worst video {between.min().item():.4f}")


# -- pytest ----------------------------------------------------------------------------------------


def ignored_modules(test_files: list[Path], missing: list[str]) -> dict[str, list[str]]:
    """{test file: [missing optional packages it mentions]} for the test files that need one."""
    found = {}
    for path in test_files:
        text = path.read_text()
        needs = [m for m in missing if re.search(MENTIONS.get(m, rf"\b{re.escape(m)}\b"), text)]
        if needs:
            found[str(path.relative_to(ROOT))] = needs
    return found


def start(command: list[str], log: Path, env: dict) -> tuple[subprocess.Popen, object]:
    handle = log.open("w")
    print(f"  $ {' '.join(command)}  (log: {log})", flush=True)
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT,
                               start_new_session=True)
    return process, handle


def stop(process: subprocess.Popen, grace: float = 10.0) -> None:
    """Interrupt a child's process group (pytest prints its summary on SIGINT), then kill what is left."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def wait_all(ctx: Context, processes: list[subprocess.Popen], reserve: float) -> bool:
    """Wait for the processes until `reserve` seconds are left in the section; True if all finished."""
    while any(p.poll() is None for p in processes):
        if ctx.section_left() < reserve:
            for p in processes:
                stop(p)
            return False
        time.sleep(0.5)
    return True


def pytest_summary(log: Path) -> tuple[str, list[str], list[str]]:
    """(the final summary line, FAILED/ERROR lines, SKIPPED lines) of a pytest log."""
    lines = log.read_text(errors="replace").splitlines()
    summary = next((l.strip("= ") for l in reversed(lines)
                    if re.search(r"\b(passed|failed|skipped|error|errors|deselected|no tests ran)\b.* in [\d.]+s", l)),
                   lines[-1] if lines else "(no output)")
    failed = [l for l in lines if l.startswith(("FAILED ", "ERROR "))]
    skipped = [l for l in lines if l.startswith("SKIPPED ")]
    return summary, failed, skipped


def node_id(line: str) -> str:
    """The test of a pytest result line ("FAILED tests/x.py::test[a b] - AssertionError: ..." -> the id)."""
    return re.sub(r" - .*$", "", line.split(" ", 1)[1]).strip()


def section_tests(ctx: Context) -> None:
    python = sys.executable
    cpus = len(os.sched_getaffinity(0))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "PYTHONUNBUFFERED": "1"}
    if ctx.args.data_root:
        env["TINYDIFF_DATA"] = str(ctx.args.data_root)
    base = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfEs", "--durations=10"]

    missing = [m for m in OPTIONAL if m not in ("xdist", "ipykernel") and importlib.util.find_spec(m) is None]
    test_files = sorted(p for p in (ROOT / "tests").glob("test_*.py") if p.name != "test_cuda.py")
    if ctx.smoke:  # a fast pair, to exercise the code
        test_files = [p for p in test_files if p.name in ("test_schedule.py", "test_metrics.py")]
    ignored = ignored_modules(test_files, missing)
    ctx.report.add("tests", "optional packages missing", ", ".join(missing) or "none")
    ctx.report.add("tests", "test modules left out for them",
                   "; ".join(f"{f} ({', '.join(m)})" for f, m in ignored.items()) or "none")
    cpu_targets = [str(p.relative_to(ROOT)) for p in test_files if str(p.relative_to(ROOT)) not in ignored]
    workers = max(1, min(8, cpus // 2)) if importlib.util.find_spec("xdist") and not ctx.smoke else 0

    cuda_log, cpu_log = ctx.out / "tests_cuda.log", ctx.out / "tests_cpu.log"
    cuda_env = {**env, "OMP_NUM_THREADS": str(max(1, cpus - workers))}
    cpu_env = {**env, "OMP_NUM_THREADS": "1" if workers else str(max(1, cpus // 2))}
    jobs = [start(base + ["tests/test_cuda.py"], cuda_log, cuda_env),
            start(base + (["-n", str(workers)] if workers else []) + cpu_targets, cpu_log, cpu_env)]
    reserve = 25 if not ctx.smoke else 5  # time to rerun failures
    try:
        finished = wait_all(ctx, [p for p, _ in jobs], reserve)
    finally:
        for process, handle in jobs:
            stop(process, grace=2)
            handle.close()
    ctx.report.add("tests", "finished within the box", finished)
    for label, log, (process, _) in (("tests/test_cuda.py", cuda_log, jobs[0]),
                                     (f"unit tests, GPU visible ({workers or 'no'} xdist workers)", cpu_log, jobs[1])):
        summary, failed, skipped = pytest_summary(log)
        ctx.report.add("tests", label, f"{summary} (exit code {process.returncode})")
        if process.returncode not in (0, None):
            ctx.failures.append(label)
        where = re.findall(r"^(\S+\.py:\d+): KeyboardInterrupt", log.read_text(errors="replace"), re.MULTILINE)
        if where:
            ctx.report.add("tests", f"  {label.split(' ')[0]} stopped by the time box in", where[-1])
        for line in failed:
            ctx.report.add("tests", f"  {label.split(' ')[0]} failure", line[:400])
        if log is cuda_log:
            for line in skipped:
                ctx.report.add("tests", "  test_cuda skip", line[:300])

    # A unit test that fails with the GPU visible: does it fail with it hidden too?
    failed_ids = [node_id(line) for line in pytest_summary(cpu_log)[1]]
    if failed_ids and ctx.section_left() > 20:
        rerun_log = ctx.out / "tests_cpu_rerun.log"
        parallel = ["-n", str(workers)] if workers and len(set(failed_ids)) > 1 else []
        job = start(base + ["-rA"] + parallel + sorted(set(failed_ids)), rerun_log,
                    {**cpu_env, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1" if parallel else str(cpus)})
        try:
            wait_all(ctx, [job[0]], 3)
        finally:
            stop(job[0], grace=2)
            job[1].close()
        summary, failed, _ = pytest_summary(rerun_log)
        ctx.report.add("tests", "failed unit tests rerun with CUDA_VISIBLE_DEVICES=''", summary)
        still = {node_id(line) for line in failed}
        passed = {node_id(line) for line in rerun_log.read_text(errors="replace").splitlines()
                  if line.startswith("PASSED ")}
        for test in sorted(set(failed_ids)):
            verdict = ("fails without the GPU too" if test in still else "fails only with a GPU visible (passes "
                       "with it hidden)" if test in passed else "not rerun in time")
            ctx.report.add("tests", f"  {test}", verdict)


# -- notebooks -------------------------------------------------------------------------------------


def committed_seconds(cell) -> float:
    """How long a code cell took when the notebook's committed outputs were made (nbclient's timing)."""
    timing = cell.get("metadata", {}).get("execution", {})
    try:
        begin, end = (datetime.datetime.fromisoformat(timing[k].replace("Z", "+00:00"))
                      for k in ("iopub.execute_input", "shell.execute_reply"))
        return (end - begin).total_seconds()
    except (KeyError, ValueError, AttributeError):
        return 0.0


def run_notebook(path: Path) -> int:
    """Child mode: execute one notebook (in memory; the file is not written), printing progress beside the
    cells' times in the committed run."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    notebook = nbformat.read(path, as_version=4)
    reference = [committed_seconds(cell) for cell in notebook.cells if cell.cell_type == "code"]
    total = len(reference)
    print(f"START {total} code cells; the committed run took {sum(reference):.0f} s", flush=True)
    started, begun, done = time.perf_counter(), [0], [0]

    def starting(cell=None, cell_index=None, **_):
        if cell is not None and cell.cell_type == "code":
            begun[0] += 1

    def executed(cell=None, cell_index=None, execute_reply=None, **_):
        if cell is not None and cell.cell_type == "code":
            done[0] += 1
            print(f"cell {done[0]}/{total} done at {time.perf_counter() - started:.1f} s "
                  f"(committed run: {sum(reference[:done[0]]):.1f} s)", flush=True)

    client = NotebookClient(notebook, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}}, on_cell_start=starting,
                            on_cell_executed=executed)
    try:
        client.execute()
    except CellExecutionError as error:
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))  # the traceback's colours
        name = ([None] + re.findall(r"^(\w+(?:Error|Exception|Exit|Interrupt)\b:.*)$", text, re.MULTILINE))[-1]
        print(f"ERROR in code cell {begun[0]}/{total} after {time.perf_counter() - started:.1f} s: "
              f"{(name or text.strip().splitlines()[-1])[:300]}", flush=True)
        return 1
    print(f"FINISHED {total} code cells in {time.perf_counter() - started:.1f} s "
          f"(committed run: {sum(reference):.0f} s)", flush=True)
    return 0


def section_notebooks(ctx: Context) -> None:
    needed = ("nbclient", "nbformat", "ipykernel")
    absent = [m for m in needed if importlib.util.find_spec(m) is None]
    if absent:
        ctx.report.add("notebooks", "wall time", f"not measured: {', '.join(absent)} missing")
        return
    if ctx.smoke:  # a two-cell stand-in: the course notebooks take minutes on a CPU
        import nbformat
        from nbformat.v4 import new_code_cell, new_notebook

        folder = Path(tempfile.mkdtemp())
        notebooks = [folder / "smoke.ipynb"]
        nbformat.write(new_notebook(cells=[new_code_cell("import tinydiff, torch\nprint(tinydiff.__version__)"),
                                           new_code_cell("x = 1 + 1")]), notebooks[0])
    else:
        notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    cpus = len(os.sched_getaffinity(0))
    threads = max(1, cpus // max(1, len(notebooks)))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1", "JUPYTER_PLATFORM_DIRS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    if ctx.args.data_root:
        env["TINYDIFF_DATA"] = str(ctx.args.data_root)
    ctx.report.add("notebooks", "how", f"{len(notebooks)} notebooks side by side, {threads} torch threads each, "
                                       f"nbclient, kernel python3 ({sys.executable})")
    log = (ctx.out / "notebooks.log").open("w")
    lock, first, last, children = threading.Lock(), {}, {}, {}

    def pump(path: Path, process: subprocess.Popen) -> None:
        for line in process.stdout:
            line = line.rstrip()
            with lock:
                log.write(f"[{path.stem}] {line}\n")
                log.flush()
            if line.startswith("START"):
                first[path] = line.split("; ", 1)[-1]
            if line.startswith(("cell ", "FINISHED", "ERROR")):
                last[path] = line
                print(f"  [{path.stem}] {line}", flush=True)

    started = time.monotonic()
    threads_ = []
    for path in notebooks:
        process = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--run-notebook", str(path)],
                                   cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   start_new_session=True)
        children[path] = process
        pump_thread = threading.Thread(target=pump, args=(path, process), daemon=True)
        pump_thread.start()
        threads_.append(pump_thread)
    try:
        finished = wait_all(ctx, list(children.values()), 3)
    finally:
        for process in children.values():
            stop(process, grace=5)
        for pump_thread in threads_:
            pump_thread.join(timeout=2)
        log.close()
    waited = time.monotonic() - started
    for path, process in children.items():
        line = last.get(path, "no cell finished")
        if line.startswith("FINISHED"):
            value = line.split(" in ", 1)[1]
        elif line.startswith("ERROR"):
            value = line
        else:
            value = f"not finished within {waited:.0f} s (last: {line}; {first.get(path, '')} in all)"
        ctx.report.add("notebooks", f"{path.name} wall time", value)
    ctx.report.add("notebooks", "all finished", finished)


# -- main ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=os.environ.get("TINYDIFF_DATA"),
                        help="MNIST root (default: $TINYDIFF_DATA)")
    parser.add_argument("--budget", type=float, help="seconds for the whole run (default: 300; 170 with --smoke)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes; runs on the CPU when there is no GPU")
    parser.add_argument("--sections", default="machine,train,sample,agree,tests,notebooks",
                        help="comma-separated sections to run, in this order")
    parser.add_argument("--run-notebook", type=Path, help=argparse.SUPPRESS)  # child mode
    args = parser.parse_args(argv)
    if args.run_notebook:
        return run_notebook(args.run_notebook)
    sys.stdout.reconfigure(line_buffering=True)
    args.budget = args.budget or (170.0 if args.smoke else 300.0)
    if args.data_root:
        args.data_root = str(Path(args.data_root).expanduser().resolve())  # notebooks run in notebooks/

    from tinydiff.device import resolve_device, resolve_precision

    device = resolve_device("auto")
    if device.type != "cuda" and not args.smoke:
        print("gpu_check: torch sees no CUDA GPU; use --smoke to test this script on the CPU", file=sys.stderr)
        return 2
    out = Path(os.environ["OUT"]) if os.environ.get("OUT") else ROOT / "runs"
    out.mkdir(parents=True, exist_ok=True)
    header = ["# tinydiff GPU check" + (" (smoke run)" if args.smoke else ""), "",
              f"{datetime.datetime.now().isoformat(timespec='seconds')}: `python tools/gpu_check.py "
              f"{' '.join(argv if argv is not None else sys.argv[1:])}` on {platform.node()}; budget {args.budget:.0f} s."]
    ctx = Context(args, Report(out / "gpu_check.md", header), out, device, resolve_precision("auto", device))
    print(f"gpu_check: device {device}, precision {ctx.precision}, budget {args.budget:.0f} s, "
          f"summary in {out / 'gpu_check.md'}", flush=True)
    ctx.report.write()

    boxes = {"machine": 30, "train": 75, "sample": 35, "agree": 60, "tests": 130, "notebooks": 10**6, "motion": 10**6}
    functions = {"machine": section_machine, "train": section_train, "sample": section_sample,
                 "agree": section_agree, "tests": section_tests, "notebooks": section_notebooks,
                 "motion": section_motion}
    for name in args.sections.split(","):
        if name not in functions:
            print(f"gpu_check: unknown section {name!r}; known: {', '.join(functions)}", file=sys.stderr)
            continue
        run_section(ctx, name, boxes[name], functions[name])
    total = time.monotonic() - ctx.started
    ctx.report.header.append(f"Finished in {total:.0f} s.")
    ctx.report.write()
    print(f"\ngpu_check: done in {total:.0f} s; summary: {out / 'gpu_check.md'}", flush=True)
    if ctx.failures:
        print(f"gpu_check: FAILED: {', '.join(ctx.failures)}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
