import os

import numpy as np
import pytest
import torch

import tinydiff
from tinydiff import ConfigError, InputError, ModelConfig, VideoUNet, preset
from tinydiff.cli import main
from tinydiff.metrics import frame_mse
from tinydiff.motion import MASK_SHARES, known_condition, training_masks, unknown_weights
from tinydiff.motion_eval import copy_last
from tinydiff.motion_pipeline import MotionPipeline
from tinydiff.moving import moving_digits
from tinydiff.train import TrainConfig, mode_shares, train
from tinydiff.viz import read_video, save_video

# A test-sized moving-digits network: every component of the `motion` preset, 6 frames.
TINY_MOTION = ModelConfig(channels=(4, 8), patch=4, attention_levels=(0, 1), attention_heads=2, groups=2, film=True,
                          global_context=True, conditional=False, known_frames=True, frames=6, size=64,
                          prediction="x0", schedule="cosine")


def test_training_masks_draw_each_kind_in_its_share():
    g = torch.Generator().manual_seed(0)
    masks = training_masks(20_000, 8, 0.1, g).bool()
    assert masks.shape == (20_000, 8)
    none = ~masks.any(1)
    first_unknown = (~masks).float().argmax(1)
    prefix = masks.any(1) & (masks.sum(1) == first_unknown) & masks[:, 0]  # the first k known, the rest not
    unknown_somewhere = (~masks).any(1)
    assert unknown_somewhere.all(), "every mask leaves at least one frame to predict"
    assert none.float().mean().item() == pytest.approx(0.1, abs=0.01)
    # "past" masks are prefixes; an "ends" or "random" mask is one too only by chance, so prefixes are at
    # least the "past" share of the conditioned ones.
    assert prefix.float().mean().item() >= 0.9 * MASK_SHARES["past"] - 0.01
    ends = masks[:, 0] & masks[:, -1]
    assert ends.float().mean().item() >= 0.9 * MASK_SHARES["ends"] - 0.01


def test_mask_shares_add_up_to_one():
    assert sum(MASK_SHARES.values()) == pytest.approx(1.0)


def test_past_masks_cover_every_count_of_known_frames():
    masks = training_masks(5000, 5, 0.0, torch.Generator().manual_seed(1)).bool()
    prefixes = masks.cumprod(1).sum(1)[masks.sum(1) == masks.cumprod(1).sum(1)]
    assert set(prefixes.tolist()) >= {1, 2, 3, 4} and 5 not in set(masks.sum(1).tolist())


def test_known_condition_and_unknown_weights_by_hand():
    videos = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).view(2, 1, 3, 2, 2)
    known = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    condition = known_condition(videos, known)
    assert condition.shape == (2, 2, 3, 2, 2)
    assert torch.equal(condition[0, 0, 0], videos[0, 0, 0]) and torch.equal(condition[0, 0, 2], videos[0, 0, 2])
    assert (condition[0, 0, 1] == 0).all() and (condition[1] == 0).all()
    assert condition[0, 1].flatten(1).tolist() == [[1.0] * 4, [0.0] * 4, [1.0] * 4]
    weights = unknown_weights(known)
    assert torch.allclose(weights, torch.tensor([[0.0, 1.0, 0.0], [1 / 3, 1 / 3, 1 / 3]]))


def test_mode_shares_of_a_moving_digits_model():
    shares = mode_shares(TrainConfig(cond_drop=0.1), TINY_MOTION)
    assert shares == {"noise": 0.1, "label": 0.0, "image": 0.0, "frames": pytest.approx(0.9)}


def test_known_frames_reach_the_unknown_ones_and_need_no_image_condition():
    model = VideoUNet(TINY_MOTION).eval()
    x = torch.randn(1, 1, 6, 64, 64)
    known = torch.tensor([[1.0, 1.0, 0, 0, 0, 0]])
    frames = torch.rand(1, 1, 6, 64, 64) * 2 - 1
    other = frames.clone()
    other[:, :, 0] = -other[:, :, 0]
    t = torch.tensor([500])
    with torch.no_grad():
        a = model(x, t, known_condition(frames, known))
        b = model(x, t, known_condition(other, known))
    assert (a[:, :, 3] - b[:, :, 3]).abs().max() > 1e-6, "a change in a known frame reaches a later frame"
    with pytest.raises(ConfigError, match="known_frames replaces"):
        ModelConfig(known_frames=True)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, fake_mnist):
    out = tmp_path_factory.mktemp("motion")
    result = train(TINY_MOTION, TrainConfig(out_dir=str(out), steps=2, batch_size=2, data_root=str(fake_mnist),
                                            device="cpu", precision="fp32", cond_drop=0.1), progress=False)
    return result.checkpoint


def test_training_a_moving_digits_model_resumes_exactly(tmp_path, fake_mnist):
    settings = dict(steps=4, batch_size=2, data_root=str(fake_mnist), device="cpu", precision="fp32", checkpoint_every=2)
    straight = train(TINY_MOTION, TrainConfig(out_dir=str(tmp_path / "a"), **settings), progress=False)
    train(TINY_MOTION, TrainConfig(out_dir=str(tmp_path / "b"), **settings), progress=False, until=2)
    resumed = train(TINY_MOTION, TrainConfig(out_dir=str(tmp_path / "b"), **settings), progress=False)
    assert resumed.losses == straight.losses
    for p, q in zip(resumed.ema.parameters(), straight.ema.parameters()):
        assert torch.equal(p, q)


def test_fill_keeps_the_known_frames_and_is_reproducible(tiny_checkpoint):
    pipe = MotionPipeline.from_checkpoint(tiny_checkpoint, device="cpu")
    assert pipe.window == 6 and pipe.modes == {"noise", "frames"}
    video = torch.rand(2, 6, 64, 64)
    known = [True, False, True, False, False, True]
    filled = pipe.fill(video, known, steps=2, seed=3)
    assert filled.shape == (2, 6, 64, 64) and filled.min() >= 0 and filled.max() <= 1
    for frame in (0, 2, 5):
        assert torch.allclose(filled[:, frame], video[:, frame], atol=1e-6)
    assert torch.equal(filled, pipe.fill(video, known, steps=2, seed=3))
    assert not torch.equal(filled, pipe.fill(video, known, steps=2, seed=4))


def test_predict_extends_far_past_the_window_from_the_last_frames(tiny_checkpoint):
    pipe = MotionPipeline.from_checkpoint(tiny_checkpoint, device="cpu")
    past = torch.rand(2, 4, 64, 64)
    future = pipe.predict(past, frames=13, steps=2, seed=0)
    assert future.shape == (2, 13, 64, 64)
    assert torch.equal(future, pipe.predict(past, frames=13, steps=2, seed=0))
    # The first window is conditioned on the last `context` given frames only: earlier ones do not matter.
    changed = past.clone()
    changed[:, 0] = 1 - changed[:, 0]
    assert torch.equal(pipe.predict(changed, frames=5, steps=2, seed=0, context=3), pipe.predict(past, frames=5, steps=2, seed=0, context=3))
    assert pipe.predict(past[0], frames=2, steps=2, seed=0).shape == (1, 2, 64, 64)
    assert pipe.generate(3, frames=8, steps=2, seed=0).shape == (3, 8, 64, 64)


@pytest.mark.parametrize("past, message", [
    (torch.rand(2, 3, 32, 32), "must be frames of shape"),
    (torch.rand(2, 3, 64, 64) * 2, "values in \\[0, 1\\]"),
    (torch.full((1, 3, 64, 64), float("nan")), "NaN"),
    (np.array([["a"]]), "must be"),
])
def test_predict_refuses_bad_frames_in_one_line(tiny_checkpoint, past, message):
    pipe = MotionPipeline.from_checkpoint(tiny_checkpoint, device="cpu")
    with pytest.raises(InputError, match=message):
        pipe.predict(past, frames=2, steps=2)


def test_predict_refuses_bad_settings(tiny_checkpoint):
    pipe = MotionPipeline.from_checkpoint(tiny_checkpoint, device="cpu")
    with pytest.raises(InputError, match="context must be"):
        pipe.predict(torch.rand(1, 3, 64, 64), frames=2, context=6)
    with pytest.raises(InputError, match="frames must be a positive integer"):
        pipe.predict(torch.rand(1, 3, 64, 64), frames=0)
    with pytest.raises(InputError, match="windows of 6 frames"):
        pipe.fill(torch.rand(1, 4, 64, 64), [True] * 4)
    for known, message in (([True, False], "got shape"), ("ab", "must be 6 booleans"), ([2, 0, 0, 0, 0, 0], "booleans"),
                           ([True] * 6, "nothing to fill")):
        with pytest.raises(InputError, match=message):
            pipe.fill(torch.rand(1, 6, 64, 64), known)
    with pytest.raises(InputError, match="guidance must be a number"):
        pipe.predict(torch.rand(1, 3, 64, 64), frames=2, guidance="x")
    with pytest.raises(ConfigError, match="not a moving-digits model"):
        MotionPipeline(VideoUNet(preset("tiny")))


def test_read_video_reads_back_what_save_video_wrote(tmp_path):
    frames = (torch.rand(1, 5, 64, 64) > 0.5).float()
    save_video(frames, tmp_path / "v.gif", scale=3, hold_last=0)
    assert torch.equal(read_video(tmp_path / "v.gif", 64), frames[0])
    np.save(tmp_path / "v.npy", (frames[0].numpy() * 255).astype(np.uint8))
    assert torch.equal(read_video(tmp_path / "v.npy", 64), frames[0])


def test_tinydiff_extend_writes_the_given_and_the_new_frames(tiny_checkpoint, tmp_path, capsys):
    np.save(tmp_path / "in.npy", np.random.default_rng(0).uniform(0, 1, (4, 64, 64)).astype(np.float32))
    assert main(["extend", str(tmp_path / "in.npy"), "-o", str(tmp_path / "out.npy"), "--frames", "9",
                 "--checkpoint", str(tiny_checkpoint), "--steps", "2", "--quiet"]) == 0
    out = np.load(tmp_path / "out.npy")
    assert out.shape == (13, 64, 64)
    np.testing.assert_allclose(out[:4], np.load(tmp_path / "in.npy"), atol=1e-6)
    assert "extended 4 frames by 9" in capsys.readouterr().out


def frames_file(shape):
    def write(folder):
        np.save(folder / "in.npy", np.zeros(shape, np.float32))
        return folder / "in.npy"
    return write


def text_file(name):
    def write(folder):
        (folder / name).write_text("not a video")
        return folder / name
    return write


@pytest.mark.parametrize("make_input, output, message", [
    (frames_file((4, 32, 32)), "out.gif", "64 x 64"),
    (text_file("in.gif"), "out.gif", "not a readable GIF"),
    (frames_file((1, 64, 64)), "out.gif", "at least 2"),
    (frames_file((4, 64, 64)), "out.txt", "must end in"),
    (lambda folder: folder / "missing.gif", "out.gif", "no such file"),
    (text_file("in.txt"), "out.gif", "a video must be"),
    (frames_file((0, 64, 64)), "out.npy", "no frames"),
])
def test_tinydiff_extend_refuses_bad_input_in_one_line_and_writes_nothing(tiny_checkpoint, tmp_path, capsys,
                                                                         make_input, output, message):
    source = make_input(tmp_path)
    code = main(["extend", str(source), "-o", str(tmp_path / output), "--checkpoint", str(tiny_checkpoint), "--quiet"])
    error = capsys.readouterr().err
    assert code == 2 and message in error and len(error.strip().splitlines()) == 1
    assert not (tmp_path / output).exists()


@pytest.mark.parametrize("option, message", [(["--frames", "0"], "--frames must be"), (["--fps", "0"], "--fps must be"),
                                             (["--steps", "0"], "--steps must be"), (["--context", "6"], "--context must be")])
def test_tinydiff_extend_refuses_bad_options_before_any_work(tiny_checkpoint, tmp_path, capsys, option, message):
    source = frames_file((4, 64, 64))(tmp_path)
    code = main(["extend", str(source), "-o", str(tmp_path / "o.gif"), "--checkpoint", str(tiny_checkpoint), *option])
    assert code == 2 and message in capsys.readouterr().err and not (tmp_path / "o.gif").exists()


def test_tinydiff_extend_refuses_a_model_that_takes_no_frames(tmp_path, capsys):
    np.save(tmp_path / "in.npy", np.zeros((4, 64, 64), np.float32))
    assert main(["extend", str(tmp_path / "in.npy"), "-o", str(tmp_path / "o.gif"), "--pretrained", "writer"]) == 2
    assert "not a moving-digits model" in capsys.readouterr().err


needs_mnist = pytest.mark.skipif(not os.environ.get("TINYDIFF_DATA"), reason="TINYDIFF_DATA is not set")


@needs_mnist
def test_the_shipped_motion_model_predicts_held_out_motion_better_than_copying():
    motion = tinydiff.pretrained("motion", device="cpu")
    data = moving_digits("heldout", 16, 20, seed=0)
    predicted = motion.predict(data.videos[:, :10], frames=10, steps=10, seed=0)
    model = frame_mse(predicted, data.videos[:, 10:]).mean().item()
    copied = frame_mse(copy_last(data.videos[:, :10], 10), data.videos[:, 10:]).mean().item()
    # Measured on a CPU (BENCHMARKS.md on 256 sequences): the model well below copying the last frame.
    assert model < 0.9 * copied, (model, copied)


@needs_mnist
def test_tinydiff_extend_continues_a_moving_digits_gif_with_the_shipped_model(tmp_path, capsys):
    data = moving_digits("heldout", 1, 6, seed=2)
    save_video(data.videos, tmp_path / "in.gif", scale=2, hold_last=0)  # as a user's GIF: enlarged, bordered
    assert main(["extend", str(tmp_path / "in.gif"), "-o", str(tmp_path / "out.npy"), "--frames", "12",
                 "--steps", "2", "--quiet"]) == 0
    out = np.load(tmp_path / "out.npy")
    assert out.shape == (18, 64, 64)
    np.testing.assert_allclose(out[:6], read_video(tmp_path / "in.gif", 64).numpy(), atol=1e-6)


def test_the_network_sees_the_known_frames_noised_to_each_step_as_in_training(tiny_checkpoint):
    pipe = MotionPipeline.from_checkpoint(tiny_checkpoint, device="cpu")
    seen = []  # (x_t, t) of every call
    pipe.model.register_forward_hook(lambda module, args, output: seen.append((args[0].double(), int(args[1][0]))))
    video = torch.rand(1, 6, 64, 64, dtype=torch.float64)
    pipe.fill(video.float(), [True, True, False, False, False, False], steps=3, seed=0)
    known = video[:, None, :2] * 2 - 1  # model space
    # Training noised every frame as sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps: recover eps at the known frames.
    abar = pipe.schedule.alphas_cumprod
    eps = [(x[:, :, :2] - abar[t].sqrt() * known) / (1 - abar[t]).sqrt() for x, t in seen]
    assert len(eps) == 3 and abs(eps[0].std().item() - 1) < 0.05 and abs(eps[0].mean().item()) < 0.05
    assert all(torch.allclose(e, eps[0], atol=1e-3) for e in eps), "one draw of noise for the whole window"
