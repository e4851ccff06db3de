from collections import Counter

import pytest
import torch

from tinydiff import ConfigError, ModelConfig, VideoUNet, preset
from tinydiff.model import CLASSES, NO_LABEL, PRESETS, DualConv, FrameGroupNorm, TemporalAttention, count_parameters, ink_distance


def randomised(model: VideoUNet) -> VideoUNet:
    """Give every weight a random value: zero-initialised projections would hide frame mixing."""
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    return model.eval()


def small(**overrides) -> ModelConfig:
    return preset("tiny", size=8, **overrides)


def inputs(b=2, t=5, size=8):
    return torch.randn(b, 1, t, size, size), torch.randint(0, 1000, (b,)), torch.randn(b, 1, size, size)


def expected_parameters(cfg: ModelConfig) -> Counter:
    """Parameters of the network a config describes, per module type, written from the architecture
    (the module docstrings of tinydiff/model.py), not read from a built model.

    conv k: c_in c_out k weights + c_out biases; linear: c_in c_out + c_out; every norm: a scale and a
    shift per channel (batch norm's running statistics are buffers, not parameters).
    """
    n = Counter()
    emb = 4 * cfg.channels[0]  # timestep embedding width

    def conv(c_in, c_out, kernel, bias=True):
        n["Conv3d"] += c_in * c_out * kernel + (c_out if bias else 0)

    def linear(c_in, c_out):
        n["Linear"] += c_in * c_out + c_out

    def norm(c):
        n["FrameGroupNorm" if cfg.norm == "group" else "BatchNorm3d"] += 2 * c

    def dual(c_in, c_out):  # (1, 3, 3) with bias, plus (3, 1, 1) without
        conv(c_in, c_out, 9)
        if cfg.temporal_conv:
            conv(c_in, c_out, 3, bias=False)

    def level(c_in, c_out, attention):
        for i in range(cfg.blocks_per_level):  # ResBlock: norm, conv, embedding, norm, conv, skip
            c = c_in if i == 0 else c_out
            norm(c)
            dual(c, c_out)
            linear(emb, 2 * c_out if cfg.film else c_out)  # a shift, or with FiLM a scale and a shift
            norm(c_out)
            dual(c_out, c_out)
            if c != c_out:
                conv(c, c_out, 1)
        if attention:  # LayerNorm, qkv, out
            n["LayerNorm"] += 2 * c_out
            linear(c_out, 3 * c_out)
            linear(c_out, c_out)

    widths, last = cfg.channels, cfg.channels[-1]
    attends = [cfg.temporal_attention and i in cfg.attention_levels for i in range(len(widths))]
    linear(1 if cfg.time_embedding == "mlp" else emb, emb)  # timestep MLP, on t / T or on sin/cos features
    linear(emb, emb)
    if cfg.film:
        linear(emb, emb)  # frame-position embedding
    if cfg.global_context:
        conv(last, last, 1)
    if cfg.labels:
        n["Embedding"] += (CLASSES + 1) * emb  # digits 0-9 and "no label"
    # x_t, digit, distance, known frames and their mask, coordinates
    planes = 1 + cfg.conditional * (1 + cfg.ink_distance) + 2 * cfg.known_frames + 2 * cfg.coord_channels
    dual(planes * cfg.patch**2, widths[0])  # stem
    for i, w in enumerate(widths):
        level(widths[max(i - 1, 0)], w, attends[i])  # down
        level(2 * w, w, attends[i])  # up, after concatenating the skip
    level(last, last, attends[-1])  # middle
    for lower, higher in zip(widths, widths[1:]):
        conv(higher, lower, 9)  # upsampling conv
    norm(widths[0])  # head
    dual(widths[0], cfg.patch**2)
    return n


# Pinned, so that any change to the architecture or to a preset shows here. Each also equals the sum of
# expected_parameters, checked below.
PARAMETERS = {"tiny": 10_896, "default": 152_244, "per-frame": 114_420, "temporal-conv": 139_380, "digits": 442_724,
              "digits-labelled": 444_132, "motion": 1_508_176, "motion-no-attention": 1_353_744,
              "motion-per-frame": 1_089_552, "original": 1_802_529}


def dual_conv_parameters(c_in: int, c_out: int) -> int:
    return 9 * c_in * c_out + c_out + 3 * c_in * c_out  # (1, 3, 3) with a bias, (3, 1, 1) without


def res_block_parameters(c_in: int, c_out: int, emb: int, film: bool) -> int:
    norms = 2 * c_in + 2 * c_out  # a scale and a shift per channel, batch or group norm alike
    embedding = emb * (2 * c_out if film else c_out) + (2 * c_out if film else c_out)
    skip = c_in * c_out + c_out if c_in != c_out else 0
    return norms + dual_conv_parameters(c_in, c_out) + dual_conv_parameters(c_out, c_out) + embedding + skip


def test_tiny_parameter_count_by_hand():
    # Widths (4, 8), 2x2 patches, embedding 4 * 4 = 16, FiLM, temporal attention at level 1 (width 8).
    block = lambda c_in, c_out: res_block_parameters(c_in, c_out, 16, film=True)  # noqa: E731
    attention = 2 * 8 + (8 * 24 + 24) + (8 * 8 + 8)  # LayerNorm, qkv, out
    total = ((16 * 16 + 16) + (16 * 16 + 16)  # timestep MLP on sinusoidal features, 16 -> 16 -> 16
             + (16 * 16 + 16)  # frame-position embedding (FiLM)
             + (8 * 8 + 8)  # global context, a 1x1x1 conv at width 8
             + 11 * 16  # label embedding: digits 0-9 and "no label"
             + dual_conv_parameters(5 * 4, 4)  # stem: x_t, digit, distance, 2 coordinates, as 2x2 patches
             + block(4, 4) + block(4, 8) + attention  # down
             + block(8, 8) + attention  # middle
             + block(16, 8) + attention + block(8, 4)  # up, after concatenating the skips
             + (9 * 8 * 4 + 4)  # upsampling conv, 8 -> 4
             + 2 * 4 + dual_conv_parameters(4, 4))  # head: norm, conv to the 2x2 patch
    assert total == PARAMETERS["tiny"] == count_parameters(VideoUNet(preset("tiny")))


def test_original_parameter_count_by_hand():
    # Widths (32, 64, 128), batch norm, no attention, an MLP on t / T: 1 -> 128 -> 128.
    block = lambda c_in, c_out: res_block_parameters(c_in, c_out, 128, film=False)  # noqa: E731
    total = ((1 * 128 + 128) + (128 * 128 + 128)  # timestep MLP
             + dual_conv_parameters(2, 32)  # stem: x_t and the digit
             + block(32, 32) + block(32, 64) + block(64, 128)  # down
             + block(128, 128)  # middle
             + block(64, 32) + block(128, 64) + block(256, 128)  # up, after concatenating the skips
             + (9 * 64 * 32 + 32) + (9 * 128 * 64 + 64)  # upsampling convs
             + 2 * 32 + dual_conv_parameters(32, 1))  # head
    assert total == PARAMETERS["original"] == count_parameters(VideoUNet(preset("original")))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_parameter_counts_per_module_type(name):
    model = VideoUNet(preset(name))
    assert count_parameters(model) == sum(expected_parameters(model.cfg).values()) == PARAMETERS[name]
    found = Counter()
    for module in model.modules():
        found[type(module).__name__] += sum(p.numel() for p in module.parameters(recurse=False))
    assert +found == expected_parameters(model.cfg)


@pytest.mark.parametrize("name", sorted(name for name, cfg in PRESETS.items() if not cfg.known_frames))
def test_presets_build_and_keep_the_shape(name):
    model = VideoUNet(preset(name)).eval()
    x, t, c = inputs(2, 15, 28)
    with torch.no_grad():
        assert model(x, t, c).shape == (2, 1, 15, 28, 28)
        assert model(x, t, None).shape == (2, 1, 15, 28, 28)


@pytest.mark.parametrize("name", sorted(name for name, cfg in PRESETS.items() if cfg.known_frames))
def test_moving_digits_presets_take_known_frames_and_keep_the_shape(name):
    model = VideoUNet(preset(name)).eval()
    x, t = torch.randn(2, 1, 20, 64, 64), torch.randint(0, 1000, (2,))
    known = torch.randn(2, 2, 20, 64, 64)  # the known frames and their mask
    with torch.no_grad():
        assert model(x, t, known).shape == model(x, t, None).shape == (2, 1, 20, 64, 64)


def frame_influence(model: VideoUNet, frame: int = 2, t_len: int = 5) -> torch.Tensor:
    """How much each output frame changes when input frame `frame` alone is perturbed: (T,)."""
    x, t, c = inputs(2, t_len)
    x2 = x.clone()
    x2[:, :, frame] += torch.randn_like(x2[:, :, frame])
    with torch.no_grad():
        return (model(x2, t, c) - model(x, t, c)).abs().amax(dim=(0, 1, 3, 4))


@pytest.mark.parametrize("extras", [{}, {"film": False, "global_context": False, "ink_distance": False, "patch": 1},
                                    {"patch": 2, "channels": (8,), "attention_levels": ()}])
def test_per_frame_ablation_is_really_per_frame(extras):
    model = randomised(VideoUNet(small(temporal_conv=False, temporal_attention=False, **extras)))
    change = frame_influence(model)
    assert change[2] > 1e-3
    assert torch.all(change[[0, 1, 3, 4]] == 0), change


def test_per_frame_ablation_holds_in_training_mode_with_group_norm():
    model = randomised(VideoUNet(small(temporal_conv=False, temporal_attention=False))).train()
    change = frame_influence(model)
    assert torch.all(change[[0, 1, 3, 4]] == 0)


def test_temporal_convolution_mixes_neighbouring_frames():
    torch.manual_seed(0)
    model = randomised(VideoUNet(small(temporal_attention=False, labels=False)))
    change = frame_influence(model, t_len=9, frame=4)
    assert torch.all(change > 1e-4), "several stacked (3, 1, 1) kernels reach every frame of 9"


def test_temporal_attention_alone_mixes_all_frames():
    model = randomised(VideoUNet(small(temporal_conv=False)))
    change = frame_influence(model, t_len=6, frame=0)
    # Without a path between frames the change is exactly 0 (see the per-frame tests); with random
    # weights the other frames move some 1e-3 as much as the nudged one (3e-3 for the tiny preset).
    assert torch.all(change[1:] > 1e-4 * change[0]), change


def test_temporal_attention_sees_every_frame_at_the_same_pixel_only():
    attention = TemporalAttention(8, heads=2)
    torch.nn.init.normal_(attention.out.weight)
    x = torch.randn(1, 8, 5, 4, 4)
    x2 = x.clone()
    x2[0, :, 0, 1, 2] += 1.0
    diff = (attention(x2) - attention(x)).abs().amax(dim=1)[0]  # (T, H, W)
    assert torch.all(diff[:, 1, 2] > 0)
    diff[:, 1, 2] = 0
    assert diff.max() == 0


def test_space_to_depth_round_trip():
    from tinydiff.model import depth_to_space, space_to_depth

    x = torch.arange(2 * 3 * 4 * 6 * 6, dtype=torch.float32).reshape(2, 3, 4, 6, 6)
    y = space_to_depth(x, 2)
    assert y.shape == (2, 12, 4, 3, 3)
    assert torch.equal(y[1, :4, 2, 1, 2], x[1, 0, 2, 2:4, 4:6].flatten())  # one 2x2 patch -> 4 channels
    assert torch.equal(depth_to_space(y, 2), x)


def test_dual_conv_splits_a_3x3x3_kernel():
    conv = DualConv(4, 6)
    assert conv.spatial.kernel_size == (1, 3, 3) and conv.temporal.kernel_size == (3, 1, 1)
    assert count_parameters(conv) == 12 * 4 * 6 + 6  # 9 + 3 weights per channel pair instead of 27
    x = torch.randn(1, 4, 5, 6, 6)
    expected = torch.nn.functional.conv3d(x, conv.spatial.weight, conv.spatial.bias, padding=(0, 1, 1)) + \
        torch.nn.functional.conv3d(x, conv.temporal.weight, padding=(1, 0, 0))
    torch.testing.assert_close(conv(x), expected)


def test_frame_group_norm_matches_group_norm_on_each_frame():
    norm = FrameGroupNorm(2, 6)
    torch.nn.init.normal_(norm.weight)
    torch.nn.init.normal_(norm.bias)
    x = torch.randn(3, 6, 4, 5, 5)
    reference = torch.stack([torch.nn.functional.group_norm(x[:, :, f], 2, norm.weight, norm.bias) for f in range(4)], 2)
    torch.testing.assert_close(norm(x), reference, rtol=1e-5, atol=1e-5)


def test_original_preset_is_the_tiny_diffusion_network():
    model = VideoUNet(preset("original"))
    kinds = {type(m).__name__ for m in model.modules()}
    assert "BatchNorm3d" in kinds and "ReLU" in kinds
    assert "TemporalAttention" not in kinds and "FrameGroupNorm" not in kinds
    assert model.cfg.channels == (32, 64, 128) and model.cfg.time_embedding == "mlp"
    assert model.time.mlp[0].in_features == 1, "an MLP on the (scaled) timestep itself"


def test_condition_changes_the_output_and_none_means_zeros():
    model = randomised(VideoUNet(small()))
    x, t, c = inputs()
    with torch.no_grad():
        assert not torch.allclose(model(x, t, c), model(x, t, None))
        torch.testing.assert_close(model(x, t, None), model(x, t, torch.zeros_like(c)))


def test_label_embedding_none_means_no_label_and_labels_change_the_output():
    model = randomised(VideoUNet(preset("tiny", labels=True)))
    x, t, c = inputs()
    three = torch.full(t.shape, 3)
    with torch.no_grad():
        torch.testing.assert_close(model(x, t, c), model(x, t, c, torch.full(t.shape, NO_LABEL)))
        assert not torch.allclose(model(x, t, None, three), model(x, t, None, None))
        assert not torch.allclose(model(x, t, None, three), model(x, t, None, torch.full(t.shape, 4)))
    # 11 learned vectors of the embedding width (4 x the first width) are all a label costs
    assert count_parameters(model) == count_parameters(VideoUNet(preset("tiny", labels=False))) + (CLASSES + 1) * 4 * 4
    with pytest.raises(ConfigError, match="no label embedding"):
        VideoUNet(preset("tiny", labels=False))(x, t, c, three)


def test_config_round_trip_and_validation():
    cfg = preset("default")
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert preset("original", channels=[8, 16, 32]).channels == (8, 16, 32)
    with pytest.raises(ConfigError, match="known presets: original"):
        preset("huge")
    with pytest.raises(ConfigError, match="unknown model settings: colour"):
        ModelConfig.from_dict({**cfg.to_dict(), "colour": 1})
    for bad in [dict(norm="layer"), dict(channels=(12, 24)), dict(attention_levels=(5,)), dict(prediction="score"),
                dict(schedule="quadratic"), dict(size=30, channels=(8, 16, 32)), dict(channels="many"),
                dict(frames=0), dict(patch=1.5), dict(film="yes"), dict(attention_levels=[True])]:
        with pytest.raises(ConfigError):
            ModelConfig(**{**cfg.to_dict(), **bad})


def test_ink_distance_is_scipys_distance_transform():
    import numpy as np
    from scipy import ndimage

    from .conftest import synthetic_digits
    from tinydiff.data import condition_from_digits

    digits, _ = synthetic_digits(32, seed=3)
    digits[0] = 255  # no paper at all
    digits[1] = 0  # no ink
    condition = condition_from_digits(digits)
    expected = np.stack([ndimage.distance_transform_edt(d > 127) for d in digits])
    expected[0] = np.hypot(28, 28)  # scipy needs some background; ours reads "as deep as the image is large"
    got = ink_distance(condition, scale=1.0)[:, 0].double().numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert torch.equal(ink_distance(torch.zeros(2, 1, 28, 28)), torch.zeros(2, 1, 28, 28))  # dropped condition


def test_frame_influence_reports_the_reach_in_time():
    from tinydiff.model import frame_influence

    per_frame = frame_influence(VideoUNet(small(temporal_conv=False, temporal_attention=False)), 2)
    assert per_frame[2] > 0 and torch.count_nonzero(per_frame) == 1
    attention_only = frame_influence(randomised(VideoUNet(small(temporal_conv=False))), 2)
    assert torch.all(attention_only > 0)


def test_frames_reached_follows_the_design():
    from tinydiff.model import frames_reached

    per_frame = VideoUNet(small(temporal_conv=False, temporal_attention=False))
    assert frames_reached(per_frame, 2).tolist() == [k == 2 for k in range(per_frame.cfg.frames)]
    convolved = randomised(VideoUNet(small(temporal_attention=False)))
    assert frames_reached(convolved, 0)[:2].all()  # a 3x1x1 convolution reaches the next frame at least
    assert frames_reached(randomised(VideoUNet(small(temporal_conv=False))), 2).all()
