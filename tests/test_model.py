import pytest
import torch

from tinydiff import ConfigError, ModelConfig, VideoUNet, preset
from tinydiff.model import PRESETS, DualConv, FrameGroupNorm, TemporalAttention, count_parameters, ink_distance


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


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_build_and_keep_the_shape(name):
    model = VideoUNet(preset(name)).eval()
    x, t, c = inputs(2, 15, 28)
    with torch.no_grad():
        assert model(x, t, c).shape == (2, 1, 15, 28, 28)
        assert model(x, t, None).shape == (2, 1, 15, 28, 28)


def frame_influence(model: VideoUNet, frame: int = 2, t_len: int = 5) -> torch.Tensor:
    """How much each output frame changes when input frame `frame` alone is perturbed: (T,)."""
    x, t, c = inputs(2, t_len)
    x2 = x.clone()
    x2[:, :, frame] += torch.randn_like(x2[:, :, frame])
    with torch.no_grad():
        return (model(x2, t, c) - model(x, t, c)).abs().amax(dim=(0, 1, 3, 4))


@pytest.mark.parametrize("extras", [{}, {"film": True, "global_context": True, "ink_distance": True},
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
    model = randomised(VideoUNet(small(temporal_attention=False)))
    change = frame_influence(model, t_len=9, frame=4)
    assert torch.all(change > 1e-4), "several stacked (3, 1, 1) kernels reach every frame of 9"


def test_temporal_attention_alone_mixes_all_frames():
    model = randomised(VideoUNet(small(temporal_conv=False)))
    change = frame_influence(model, t_len=6, frame=0)
    assert torch.all(change > 1e-4), change


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
