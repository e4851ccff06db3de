import math

import pytest
import torch

from tinydiff import InputError
from tinydiff.metrics import (digit_crops, digit_identity, flicker, frame_iou, frame_mae, frame_mse, frame_psnr,
                              frame_ssim, last_frame_fidelity, position_error, vanishing_ink)
from tinydiff.motion_eval import copy_last

from .conftest import InkCounter, SureOfEvenCounts


def video(*frames):
    """Build a (1, T, 2, 2) video from T lists of 4 pixel values."""
    return torch.tensor([[[f[0], f[1]], [f[2], f[3]]] for f in frames], dtype=torch.float32)[None]


def test_frame_iou_hand_computed():
    truth = video([1, 0, 0, 0], [1, 1, 0, 0])
    pred = video([1, 1, 0, 0], [1, 1, 0, 0.4])  # frame 1: IoU 1/2; frame 2: 2/2 (0.4 is not ink)
    assert frame_iou(pred, truth).tolist() == [pytest.approx(0.75)]
    assert frame_iou(truth, truth).tolist() == [1.0]
    empty = video([0, 0, 0, 0])
    assert frame_iou(empty, empty).tolist() == [1.0], "two empty frames agree"


def test_vanishing_ink_hand_computed():
    growing = video([1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0])
    assert vanishing_ink(growing).tolist() == [0.0]
    # ink before the last frame: 2 + 2 = 4 pixels; pixel 1 vanishes once -> 1/4.
    shaky = video([1, 1, 0, 0], [1, 0, 1, 0], [1, 1, 1, 1])
    assert vanishing_ink(shaky).tolist() == [0.25]


def test_last_frame_fidelity():
    videos = video([0, 0, 0, 0], [1, 1, 0, 0])
    assert last_frame_fidelity(videos, torch.tensor([[[255, 0], [255, 0]]], dtype=torch.uint8)).tolist() == [pytest.approx(1 / 3)]
    assert last_frame_fidelity(videos, torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])).tolist() == [1.0]


def test_flicker_counts_excess_toggles():
    assert flicker(video([0, 0, 0, 0], [1, 0, 0, 0], [1, 1, 0, 0])).tolist() == [0.0]
    # pixel 0 goes on, off, on (2 toggles beyond the 1 it needs... it needs 1, makes 3 -> 2 extra);
    # pixel 1 appears then vanishes (2 toggles, needs 0). Ever-inked pixels: 2 -> (2 + 2) / 2.
    assert flicker(video([0, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0])).tolist() == [2.0]


def test_metrics_refuse_wrong_shapes():
    with pytest.raises(InputError, match="shape"):
        frame_iou(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 5))
    with pytest.raises(InputError, match=r"\(N, T, H, W\)"):
        vanishing_ink(torch.zeros(3, 4, 4))


def test_identity_switches_counts_changes_of_mind():
    from tinydiff.metrics import identity_switches

    videos = torch.zeros(2, 15, 28, 28)
    videos[0, 9:, 0, :3] = 1  # the same 3 pixels in every late frame: no switch
    videos[1, 9:, 0, :3] = 1
    videos[1, 11, 0, 3] = 1  # one frame with a fourth pixel: 3 -> 4 -> 3, two switches
    assert identity_switches(videos, InkCounter()).tolist() == [0, 2]
    assert identity_switches(videos, InkCounter(), first_frame=12).tolist() == [0, 0]
    with pytest.raises(InputError, match="first_frame"):
        identity_switches(videos, InkCounter(), first_frame=15)


def test_frame_labels_reads_every_frame_from_the_first_asked():
    from tinydiff.metrics import frame_labels

    videos = torch.zeros(1, 15, 28, 28)
    for k in range(15):
        videos[0, k:, 0, k] = 0.9  # one more pixel per frame; 0.9 binarises to ink
    assert frame_labels(videos, InkCounter()).tolist() == [[1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 9, 9, 9, 9]]
    assert frame_labels(videos, InkCounter(), first_frame=13).tolist() == [[9, 9]]
    with pytest.raises(InputError, match="first_frame"):
        frame_labels(videos, InkCounter(), first_frame=15)


# Measures for videos generated from noise. Everything runs on the CPU.
CPU = torch.device("cpu")


class InkCounterWithProbabilities(InkCounter):
    """InkCounter that also gives probabilities: 0.6 on the ink count (capped at 9), 0.4/9 on each other digit."""

    def probabilities(self, images):
        probabilities = torch.full((len(images), 10), 0.4 / 9)
        probabilities[torch.arange(len(images)), self.predict(images)] = 0.6
        return probabilities


def test_last_frame_judgement_reads_the_binarised_last_frame():
    from tinydiff.metrics import last_frame_judgement

    videos = torch.zeros(3, 4, 28, 28, device=CPU)
    videos[0, -1, 0, :2] = 0.9  # two ink pixels in the last frame
    videos[1, :-1, 0, :5] = 1.0  # ink only before the last frame: the last is empty -> 0
    videos[2, -1, 0, :4] = 0.4  # grey below 0.5 is no ink -> 0
    videos[2, -1, 1, :7] = 0.6
    labels, confidence = last_frame_judgement(videos, InkCounterWithProbabilities())
    assert labels.tolist() == [2, 0, 7]
    assert confidence.tolist() == pytest.approx([0.6] * 3)


def test_last_frame_judgement_with_a_digit_classifier_matches_a_direct_call():
    from tinydiff.classifier import DigitClassifier
    from tinydiff.data import writing_videos
    from tinydiff.metrics import last_frame_judgement

    from .conftest import synthetic_digits

    torch.manual_seed(0)
    classifier = DigitClassifier().to(CPU)  # random weights (seeded): the real interface, not the shipped file
    videos = writing_videos(synthetic_digits(6, seed=3)[0]) * 0.8  # grey ink, still > 0.5
    probabilities = classifier.probabilities((videos[:, -1] > 0.5).float())
    labels, confidence = last_frame_judgement(videos, classifier)
    assert labels.tolist() == probabilities.argmax(dim=1).tolist()
    assert torch.allclose(confidence, probabilities.amax(dim=1))


def test_class_entropy_against_scipy():
    import numpy as np
    from scipy.stats import entropy

    from tinydiff.metrics import class_entropy, classes_present

    rng = np.random.default_rng(0)
    for labels in ([3] * 8, [0, 1] * 4, list(range(10)) * 5, rng.integers(0, 10, 100), rng.integers(2, 5, 37)):
        labels = torch.as_tensor(np.asarray(labels))
        counts = np.bincount(labels.numpy(), minlength=10)
        assert class_entropy(labels) == pytest.approx(entropy(counts))  # scipy normalises, natural log
        assert classes_present(labels) == (counts > 0).sum()
    assert class_entropy(torch.tensor([3] * 8)) == 0.0
    assert class_entropy(torch.arange(10)) == pytest.approx(np.log(10))
    quarter = -(0.25 * np.log(0.25) + 0.75 * np.log(0.75))  # hand-computed, two classes
    assert class_entropy(torch.tensor([0, 1, 1, 1]), classes=2) == pytest.approx(quarter)
    none = torch.zeros(0, dtype=torch.long)
    assert (class_entropy(none), classes_present(none)) == (0.0, 0)


def test_class_entropy_refuses_bad_labels():
    from tinydiff.metrics import class_entropy, classes_present

    with pytest.raises(InputError, match=r"0\.\.9"):
        class_entropy(torch.tensor([0, 10]))
    with pytest.raises(InputError, match=r"0\.\.1"):
        classes_present(torch.tensor([-1, 1]), classes=2)
    with pytest.raises(InputError, match="1-D"):
        class_entropy(torch.tensor([0.0, 1.0]))
    with pytest.raises(InputError, match="1-D"):
        class_entropy(torch.zeros(2, 3, dtype=torch.long))


def test_identity_stability_is_the_share_of_late_frames_agreeing_with_the_last():
    from tinydiff.metrics import frame_labels, identity_stability

    videos = torch.zeros(3, 15, 28, 28, device=CPU)
    videos[:, 9:, 0, :3] = 1  # 3 ink pixels in frames 10-15 (1-based) of every video
    videos[1, 10, 0, 3] = 1  # video 1: frame 11 reads 4 -> 5 of 6 agree with the last
    videos[2, 14, 0, 3:6] = 1  # video 2: only the last frame reads 6 -> 1 of 6
    assert identity_stability(videos, InkCounter()).tolist() == pytest.approx([1.0, 5 / 6, 1 / 6])
    assert identity_stability(videos, InkCounter(), first_frame=11).tolist() == pytest.approx([1.0, 1.0, 1 / 4])
    labels = frame_labels(videos, InkCounter(), first_frame=5)  # independent: count matches by hand
    expected = [sum(int(l == row[-1]) for l in row) / len(row) for row in labels.tolist()]
    assert identity_stability(videos, InkCounter(), first_frame=5).tolist() == pytest.approx(expected)
    with pytest.raises(InputError, match="first_frame"):
        identity_stability(videos, InkCounter(), first_frame=15)


def test_self_consistency_is_one_for_a_true_writing_video_and_less_when_shuffled():
    from tinydiff.data import writing_videos
    from tinydiff.metrics import frame_iou, self_consistency

    from .conftest import synthetic_digits

    digits = synthetic_digits(5, seed=4)[0]
    truth = writing_videos(digits)  # (5, 15, 28, 28)
    assert self_consistency(truth).tolist() == [1.0] * 5
    assert self_consistency(truth * 0.7 + 0.1).tolist() == [1.0] * 5, "grey levels binarise to the same video"
    order = torch.tensor([3, 0, 7, 1, 12, 5, 9, 2, 11, 4, 13, 6, 10, 8, 14])  # last frame kept in place
    shuffled = truth[:, order]
    scores = self_consistency(shuffled)
    assert (scores < 1).all()
    assert scores.tolist() == pytest.approx(frame_iou(shuffled, truth).tolist())  # same last frame, same truth
    with pytest.raises(InputError, match="28x28"):
        self_consistency(torch.zeros(2, 15, 14, 14))
    with pytest.raises(InputError, match=r"\(N, T, H, W\)"):
        self_consistency(torch.zeros(15, 28, 28))


def brute_force_nearest_iou(frames, digits):
    """A double loop over numpy masks: the reference for nearest_training_iou."""
    import numpy as np

    best = []
    for frame in frames.numpy() > 0.5:
        ious = []
        for digit in digits.numpy() > 127:
            union = np.logical_or(frame, digit).sum()
            ious.append(np.logical_and(frame, digit).sum() / union if union else 1.0)
        best.append(max(ious))
    return best


def test_nearest_training_iou_against_a_double_loop():
    from tinydiff.metrics import nearest_training_iou

    g = torch.Generator().manual_seed(0)
    digits = (torch.rand(11, 6, 6, generator=g) > 0.6).to(torch.uint8) * 255  # (M, H, W) uint8
    digits[4] = 0  # an empty training digit
    frames = torch.rand(9, 6, 6, generator=g)  # (N, H, W) in [0, 1]
    frames[0] = digits[7] / 255.0 * 0.8  # exactly a training digit, in grey ink
    frames[1] = 0.2  # empty: matches the empty training digit
    expected = brute_force_nearest_iou(frames, digits)
    iou = nearest_training_iou(frames, digits)
    assert iou.dtype == torch.float64 and iou.shape == (9,)
    assert iou.tolist() == pytest.approx(expected, abs=1e-12)
    assert iou[:2].tolist() == [1.0, 1.0]
    assert nearest_training_iou(frames, digits, rows_per_chunk=2).tolist() == iou.tolist(), "chunked == whole"
    assert nearest_training_iou(frames, digits > 127).tolist() == iou.tolist(), "bool digits"
    assert nearest_training_iou(frames, digits / 255.0).tolist() == iou.tolist(), "digits in [0, 1]"


def test_nearest_training_iou_refuses_bad_shapes():
    from tinydiff.metrics import nearest_training_iou

    digits = torch.zeros(4, 28, 28, dtype=torch.uint8)
    with pytest.raises(InputError, match=r"videos\[:, -1\]"):
        nearest_training_iou(torch.zeros(2, 15, 28, 28), digits)
    with pytest.raises(InputError, match="training_digits"):
        nearest_training_iou(torch.zeros(2, 28, 28), torch.zeros(4, 14, 14, dtype=torch.uint8))
    with pytest.raises(InputError, match="training_digits"):
        nearest_training_iou(torch.zeros(2, 28, 28), digits[:0])
    assert nearest_training_iou(torch.zeros(0, 28, 28), digits).shape == (0,)


def test_generation_report_by_hand():
    import math

    from tinydiff.metrics import generation_report

    videos = torch.zeros(4, 15, 28, 28, device=CPU)
    videos[0, :, 0, :2] = 1  # 2 ink pixels in every frame
    videos[1, :, 0, :3] = 1  # 3, read with p = 0.5 only
    videos[2, :, 0, :4] = 1  # 4
    videos[3, :, 5, :2] = 1  # 2, elsewhere
    training = torch.zeros(2, 28, 28, dtype=torch.uint8)
    training[0, 0, :2] = 255  # video 0's last frame exactly
    training[1, 20, :9] = 255
    report = generation_report(videos, SureOfEvenCounts(), training)
    assert report["videos"] == 4 and report["classes"] == 3
    assert report["confident_share"] == pytest.approx(0.75)  # 2, 4 and 2 read with p >= 0.9
    assert report["entropy"] == pytest.approx(-(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25)))
    assert report["memorised_share"] == pytest.approx(0.25)
    assert report["identity_stability"] == 1.0 and report["vanishing_ink"] == 0.0
    assert "per_digit" not in report
    asked = generation_report(videos, SureOfEvenCounts(), training, asked=[2, 3, 5, 1])
    assert asked["confident_share"] == pytest.approx(0.25)  # only video 0 is read as asked
    assert asked["per_digit"][2] == 1.0 and asked["per_digit"][3] == 0.0 and asked["per_digit"][5] == 0.0
    assert math.isnan(asked["per_digit"][0]), "a digit never asked for has no share"
    for wrong in ([2, 3, 5], [2.0, 3.0, 5.0, 1.0]):
        with pytest.raises(InputError, match="one integer label per video"):
            generation_report(videos, SureOfEvenCounts(), training, asked=wrong)


def test_read_as_asked_by_hand():
    from tinydiff.metrics import read_as_asked

    videos = torch.zeros(3, 15, 28, 28, device=CPU)
    videos[0, -1, 0, :2] = 1  # read as 2 with p = 0.95
    videos[1, -1, 0, :3] = 1  # read as 3 with p = 0.5: never confident
    videos[2, -1, 0, :4] = 1  # read as 4 with p = 0.95
    assert read_as_asked(videos, SureOfEvenCounts()).tolist() == [True, False, True]
    assert read_as_asked(videos, SureOfEvenCounts(), asked=torch.tensor([2, 3, 5])).tolist() == [True, False, False]


def test_bootstrap_interval_matches_scipy_and_the_normal_approximation():
    import numpy as np
    from scipy import stats

    from tinydiff.metrics import bootstrap_interval

    values = np.random.default_rng(0).exponential(size=400)  # skewed, like most per-video measures
    low, high = bootstrap_interval(values, level=0.95, resamples=20_000)
    reference = stats.bootstrap((values,), np.mean, confidence_level=0.95, n_resamples=20_000,
                                method="percentile", random_state=1).confidence_interval
    # Two independent bootstraps of the same data: endpoints agree to a small share of the width.
    width = reference.high - reference.low
    assert low == pytest.approx(reference.low, abs=0.03 * width)
    assert high == pytest.approx(reference.high, abs=0.03 * width)
    # And both are close to mean +- 1.96 standard errors.
    half = 1.96 * values.std(ddof=1) / np.sqrt(len(values))
    assert (high - low) / 2 == pytest.approx(half, rel=0.05)
    shares = np.r_[np.ones(30), np.zeros(10)]  # a share of 0.75 on 40 videos
    low, high = bootstrap_interval(shares)
    assert low < 0.75 < high and 0.0 <= low and high <= 1.0
    assert bootstrap_interval(np.full(10, 0.3)) == pytest.approx((0.3, 0.3))  # no spread, no width


def test_bootstrap_interval_refuses_what_it_cannot_estimate():
    from tinydiff.metrics import bootstrap_interval

    with pytest.raises(InputError, match="at least 2 values"):
        bootstrap_interval([0.5])
    with pytest.raises(InputError, match="finite"):
        bootstrap_interval([0.5, float("nan")])
    with pytest.raises(InputError, match="level"):
        bootstrap_interval([0.1, 0.2], level=95)
    with pytest.raises(InputError, match="resamples"):
        bootstrap_interval([0.1, 0.2], resamples=10)


# -- moving digits ---------------------------------------------------------------------------------------


def test_frame_mse_mae_and_psnr_by_hand():
    truth = torch.zeros(1, 2, 4, 4)
    frames = truth.clone()
    frames[0, 0, 0, :2] = 0.5  # frame 1: two pixels off by 0.5
    frames[0, 1] = 1.0  # frame 2: all 16 pixels off by 1
    assert frame_mse(frames, truth).tolist() == [[0.5, 16.0]]
    assert frame_mae(frames, truth).tolist() == [[1.0, 16.0]]
    # PSNR = 10 log10(1 / mean squared error): mean 0.5 / 16 -> 15.05 dB; mean 1 -> 0 dB; no error -> inf
    assert frame_psnr(frames, truth)[0].tolist() == pytest.approx([10 * math.log10(32), 0.0])
    assert frame_psnr(truth, truth).isinf().all()


def test_frame_ssim_matches_scikit_image():
    structural_similarity = pytest.importorskip("skimage.metrics").structural_similarity
    g = torch.Generator().manual_seed(0)
    truth = (torch.rand(2, 3, 24, 20, generator=g) > 0.6).double()
    frames = (truth + 0.3 * torch.rand(truth.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    ours = frame_ssim(frames, truth)
    for n in range(2):
        for t in range(3):
            reference = structural_similarity(frames[n, t].numpy(), truth[n, t].numpy(), gaussian_weights=True,
                                              sigma=1.5, use_sample_covariance=False, data_range=1.0)
            assert ours[n, t].item() == pytest.approx(reference, abs=1e-12)
    assert torch.allclose(frame_ssim(truth, truth), torch.ones(2, 3, dtype=torch.float64))
    with pytest.raises(InputError, match="at least 11"):
        frame_ssim(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8))


def test_digit_crops_identity_and_position_error_by_hand():
    digit = torch.zeros(28, 28)
    digit[4:24, 10:14] = 1.0  # a bar: 80 ink pixels
    other = torch.zeros(28, 28)
    other[10:14, 2:26] = 1.0  # a lying bar: 96 ink pixels
    frames = torch.zeros(1, 2, 64, 64)
    frames[0, 0, 5:33, 7:35] = digit
    frames[0, 0, 30:58, 36:64] = torch.maximum(frames[0, 0, 30:58, 36:64], other)
    frames[0, 1, 8:36, 11:39] = digit  # frame 2 shows the first digit 5 px off (3 down, 4 right), the second not at all
    corners = torch.tensor([[[[5, 7], [30, 36]], [[5, 7], [30, 36]]]])
    crops = digit_crops(frames, corners)
    assert crops.shape == (1, 2, 2, 28, 28) and torch.equal(crops[0, 0, 0], digit)
    errors = position_error(frames, corners, torch.stack([digit, other])[None])
    assert errors[0, 0].tolist() == [0.0, 0.0] and errors[0, 1, 0].item() == pytest.approx(5.0)
    # The stand-in classifier reads a crop's ink count, capped at 9: every crop here reads 9.
    read = digit_identity(frames, corners, torch.tensor([[9, 9]]), InkCounter())
    assert read.tolist() == [[[True, True], [True, False]]]  # frame 2's second crop is empty (reads 0)
    with pytest.raises(InputError, match="fit inside"):
        digit_crops(frames, torch.full((1, 2, 2, 2), 40))


def test_position_error_finds_a_faint_digit_beside_bold_ink():
    faint = torch.zeros(28, 28)
    faint[6:22, 12:15] = 0.3  # a thin, faint bar
    frames = torch.zeros(1, 1, 64, 64)
    frames[0, 0, 2:30, 3:31] = faint
    frames[0, 0, 30:60, 30:60] = 1.0  # a bold block elsewhere correlates more with any digit
    errors = position_error(frames, torch.tensor([[[[2, 3]]]]), faint[None, None])
    assert errors.tolist() == [[[0.0]]]


def test_copy_last_repeats_the_last_given_frame():
    past = torch.rand(2, 3, 5, 5)
    copied = copy_last(past, 4)
    assert copied.shape == (2, 4, 5, 5) and all(torch.equal(copied[:, k], past[:, -1]) for k in range(4))
