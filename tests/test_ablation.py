import json
from dataclasses import asdict, replace

import pytest
import torch

from tinydiff import ConfigError, InputError, Pipeline, VideoUNet, pretrained
from tinydiff import ablation
from tinydiff.ablation import (BATCH, TASKS, VIDEOS, load_measured, load_seeds, main, measure, measure_seeds, per_video,
                               sample, save_measured, seed_mean, seed_table, seed_verdict, summary)
from tinydiff.model import frames_reached, preset
from tinydiff.registry import ABLATION, MODELS, recorded_sha256
from tinydiff.ship import train_config
from tinydiff.train import TrainConfig

from .conftest import SureOfEvenCounts

CPU = torch.device("cpu")


def test_per_video_hand_computed():
    videos = torch.zeros(4, 15, 28, 28, device=CPU)
    for k in range(15):  # video 0 writes one more pixel per frame: monotone, never vanishing
        videos[0, k:, 0, k] = 1
    videos[1, :, 5, 5] = 1  # video 1: one pixel throughout, and a second one that blinks in frame 12 only
    videos[1, 12, 6, 6] = 1
    videos[2:, :, 3, :4] = 1  # videos 2 and 3: four pixels throughout, read as a 4 with p = 0.95
    asked = torch.tensor([9, 1, 4, 5])
    rows = per_video(videos, SureOfEvenCounts(), asked=asked, truth=videos.clone())
    # Video 0 holds 10..15 pixels in frames 10..15: read as 9 throughout (capped), with p = 0.5 (odd).
    # Video 1 holds 1, 1, 1, 2 (frame 13), 1, 1 pixels in frames 10..15.
    assert rows["read"].tolist() == [0.0, 0.0, 1.0, 0.0]  # only video 2 is read, and as asked, with p >= 0.9
    assert rows["switches"].tolist() == [0.0, 2.0, 0.0, 0.0]
    assert rows["stable"].tolist() == pytest.approx([1.0, 5 / 6, 1.0, 1.0])
    assert rows["vanish"].tolist() == pytest.approx([0.0, 1 / 15, 0.0, 0.0])  # 1 of 15 inked pixels before the end
    assert rows["flicker"].tolist() == pytest.approx([0.0, 1.0, 0.0, 0.0])  # 2 excess toggles / 2 ever-inked pixels
    assert rows["iou"].tolist() == [1.0, 1.0, 1.0, 1.0]
    assert all(value.dtype == torch.float64 and value.shape == (4,) for value in rows.values())
    unasked = per_video(videos, SureOfEvenCounts())
    assert "iou" not in unasked and unasked["read"].tolist() == [0.0, 0.0, 1.0, 1.0]  # any digit, p >= 0.9


def test_sample_uses_the_batch_start_as_seed_and_asks_for_i_mod_10(tiny_config):
    torch.manual_seed(0)
    pipe = Pipeline(VideoUNet(tiny_config), "cpu")
    videos, asked = sample(pipe, "class-conditional", 16, 4)
    assert asked.tolist() == [6, 7, 8, 9]
    expected = pipe.generate(4, seed=16, digit=[6, 7, 8, 9], **TASKS["class-conditional"])
    assert torch.equal(videos, expected)
    digits = torch.randint(0, 256, (20, 28, 28), dtype=torch.uint8)
    labels = torch.arange(20) % 10
    videos, asked = sample(pipe, "image-to-video", 16, 4, (digits, labels))
    assert torch.equal(videos, pipe.animate(digits[16:], seed=16, **TASKS["image-to-video"]))
    assert asked.tolist() == [6, 7, 8, 9]
    assert sample(pipe, "unconditional", 0, 2)[1] is None
    with pytest.raises(InputError, match="held-out digits up to number 24"):
        sample(pipe, "image-to-video", 16, 8, (digits, labels))
    with pytest.raises(InputError, match="unknown task"):
        sample(pipe, "video-to-image", 0, 1)


def test_measure_keeps_every_video_and_extends_runs_exactly(tiny_config, monkeypatch):
    import tinydiff.ablation as ablation

    monkeypatch.setattr(ablation, "TASKS", {name: {**sampling, "steps": 2} for name, sampling in TASKS.items()})
    torch.manual_seed(0)
    pipes = {"a": Pipeline(VideoUNet(tiny_config), "cpu")}
    digits = torch.randint(0, 256, (2 * BATCH, 28, 28), dtype=torch.uint8)
    heldout = (digits, torch.arange(2 * BATCH) % 10)
    short = measure(pipes, SureOfEvenCounts(), heldout, videos=BATCH, progress=False)
    long = measure(pipes, SureOfEvenCounts(), heldout, videos=2 * BATCH, progress=False)
    for task in TASKS:
        for key, values in short["models"]["a"][task].items():
            assert len(values) == BATCH and len(long["models"]["a"][task][key]) == 2 * BATCH
            assert long["models"]["a"][task][key][:BATCH] == values  # the same first batch, bit for bit
    assert "iou" in short["models"]["a"]["image-to-video"] and "iou" not in short["models"]["a"]["unconditional"]
    with pytest.raises(InputError, match="multiple of"):
        measure(pipes, SureOfEvenCounts(), heldout, videos=BATCH + 1)
    with pytest.raises(InputError, match="no models"):
        measure({}, SureOfEvenCounts(), heldout)


def hand_results(name="ablation-per-frame"):
    rows = {"read": [1.0, 0.0, 1.0, 1.0], "flicker": [0.0, 0.1, 0.2, 0.3]}
    return {"settings": {"videos": 4}, "models": {name: {"seconds": {}, **{task: dict(rows) for task in TASKS}}}}


def test_measurements_are_saved_with_what_they_depend_on_and_refused_when_stale(tmp_path):
    path = tmp_path / "measured.json"
    results = hand_results()
    save_measured(results, path)
    assert results == hand_results(), "saving leaves the caller's results as they were"
    assert load_measured(path)["models"]["ablation-per-frame"]["unconditional"]["read"] == [1.0, 0.0, 1.0, 1.0]
    saved = json.loads(path.read_text())
    for change, part in ((("models", "ablation-per-frame", "sha256"), "other weights"),
                         (("settings", "classifier_sha256"), "another classifier_sha256"),
                         (("settings", "batch"), "another batch")):
        stale = json.loads(json.dumps(saved))
        *parents, key = change
        target = stale
        for parent in parents:
            target = target[parent]
        target[key] = "0" * 64
        path.write_text(json.dumps(stale))
        with pytest.raises(ConfigError, match=part):
            load_measured(path)
    for broken in ("{not json", "{}"):
        path.write_text(broken)
        with pytest.raises(ConfigError, match="make ablation-measure"):
            load_measured(path)
    with pytest.raises(ConfigError, match="no readable ablation measurements"):
        load_measured(tmp_path / "missing.json")
    with pytest.raises(InputError, match="not shipped: my-net"):
        save_measured(hand_results("my-net"), path)


def test_measuring_with_a_bad_count_ends_in_one_line_before_any_work(capsys):
    assert main(["measure", "--videos", "10"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m tinydiff.ablation: error:") and "multiple of 16" in err and err.count("\n") == 1


def test_summary_shows_the_mean_inside_its_interval():
    table = summary(hand_results(), "unconditional", columns=["read", "flicker"])
    header, rule, row = table.splitlines()
    assert header == "| model | last frame read (p >= 0.9) | flicker |"
    assert rule == "| --- | ---: | ---: |"
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[0] == "ablation-per-frame"
    for cell, mean in zip(cells[1:], (0.75, 0.15)):  # means by hand
        shown, interval = cell.split(" [")
        low, high = (float(x) for x in interval.rstrip("]").split(", "))
        assert float(shown) == pytest.approx(mean) and low <= mean <= high
    with pytest.raises(InputError, match="no measure"):
        summary(hand_results(), "unconditional", columns=["iou"])
    with pytest.raises(InputError, match="unknown task"):
        summary(hand_results(), "painting")
    with pytest.raises(InputError, match="no models"):
        summary({"models": {}}, "unconditional")


def test_ablation_models_share_one_budget_and_differ_only_in_what_mixes_frames():
    recipes = [MODELS[name].recipe for name in ABLATION]
    assert len({replace(recipe, preset="") for recipe in recipes}) == 1
    configs = [preset(recipe.preset).to_dict() for recipe in recipes]
    mixing = {"temporal_conv", "temporal_attention"}
    assert all({key for key in configs[0] if config[key] != configs[0][key]} <= mixing for config in configs)


@pytest.mark.parametrize("name", ABLATION)
def test_shipped_ablation_models_were_trained_with_their_recipe(name):
    recipe = MODELS[name].recipe
    pipe = pretrained(name, device="cpu")
    assert pipe.cfg == preset(recipe.preset)
    payload = torch.load(pipe_path(name), weights_only=True)
    trained = {**asdict(TrainConfig()), **payload["train_config"]}  # a setting added since: trained at its default
    assert payload["step"] == recipe.steps
    assert {key: trained[key] for key in recipe.train_settings()} == recipe.train_settings()


def test_shipped_ablation_models_reach_as_far_in_time_as_their_design():
    # Nudge the first frame and count the output frames that move.
    reach = {name: int(frames_reached(pretrained(name, device="cpu").model, 0).sum()) for name in ABLATION}
    assert reach["ablation-per-frame"] == 1  # only the frame that was nudged
    # 12 stacked 3x1x1 kernels: at least the next frames, at most 12 frames further (frame 13)
    assert 3 <= reach["ablation-temporal-conv"] <= 13
    assert reach["ablation-attention"] == 15  # attention at 7 px lets every frame see every other


def test_shipped_measurements_belong_to_the_shipped_weights():
    results = load_measured()
    assert list(results["models"]) == [*ABLATION, "writer"]
    assert results["settings"]["videos"] == VIDEOS and results["settings"]["tasks"] == TASKS
    for model in results["models"].values():
        assert all(len(values) == VIDEOS for task in TASKS for values in model[task].values())


def pipe_path(name):
    from importlib import resources
    return resources.files("tinydiff") / "weights" / f"{name}.pt"


def seed_results(values: dict) -> dict:
    """Hand-made seed measurements: {name: [mean of seed 0, 1, 2]} of the unconditional 'consistent'."""
    return {"settings": {}, "models": {name: {str(seed): {"sha256": "0" * 64, "unconditional": {"consistent": v}}
                                              for seed, v in enumerate(means)} for name, means in values.items()}}


def test_seed_verdict_compares_every_seed_with_every_seed():
    results = seed_results({"a": [0.50, 0.60, 0.55], "b": [0.40, 0.45, 0.58], "c": [0.30, 0.35, 0.32]})
    low, high, verdict = seed_verdict(results, "a", "b", "unconditional", "consistent")
    assert (low, high) == pytest.approx((0.50 - 0.58, 0.60 - 0.40)) and verdict == "within the seed spread"
    low, high, verdict = seed_verdict(results, "b", "c", "unconditional", "consistent")
    assert (low, high) == pytest.approx((0.40 - 0.35, 0.58 - 0.30)) and verdict == "higher"
    assert seed_verdict(results, "c", "a", "unconditional", "consistent")[2] == "lower"


def test_seed_mean_averages_a_networks_seeds():
    results = seed_results({"a": [0.50, 0.60, 0.55]})
    assert seed_mean(results, "a", "unconditional", "consistent") == pytest.approx(1.65 / 3)
    with pytest.raises(InputError, match="no seed measurements of d"):
        seed_mean(results, "d", "unconditional", "consistent")


def test_seed_table_lists_each_seed_and_the_range():
    table = seed_table(seed_results({"a": [0.50, 0.60, 0.55]}), [("unconditional", "consistent")])
    header, _, row = table.splitlines()
    assert header == "| measure | network | seed 0 | seed 1 | seed 2 | range |"
    assert [cell.strip() for cell in row.strip("|").split("|")] == [
        "unconditional, self-consistency", "a", "0.50", "0.60", "0.55", "0.10"]
    with pytest.raises(InputError, match="no measure"):
        seed_table(seed_results({"a": [0.5, 0.6, 0.5]}), [("unconditional", "colour")])
    with pytest.raises(InputError, match="no measure 'iou'"):  # measured for image-to-video only
        seed_table(seed_results({"a": [0.5, 0.6, 0.5]}), [("unconditional", "iou")])
    with pytest.raises(InputError, match="no seed measurements of d"):
        seed_verdict(seed_results({"a": [0.5, 0.6, 0.5]}), "a", "d", "unconditional", "consistent")


def test_seed_measurements_join_the_shipped_networks_own_seed_and_are_refused_when_stale(tmp_path):
    path = tmp_path / "seeds.json"
    retrained = {name: {"1": {"sha256": "1" * 64, **{task: {"read": 0.5} for task in TASKS}}} for name in ABLATION}
    results = {"settings": {"videos": VIDEOS, **ablation._fingerprint()}, "models": retrained}
    path.write_text(json.dumps(results))
    loaded = load_seeds(path)["models"]["ablation-attention"]
    assert list(loaded) == ["0", "1"] and loaded["1"]["unconditional"] == {"read": 0.5}
    shipped = load_measured()["models"]["ablation-attention"]["unconditional"]["read"]
    assert loaded["0"]["unconditional"]["read"] == pytest.approx(sum(shipped) / len(shipped))  # from MEASURED
    for change, part in ((("settings", "videos"), "videos per task"), (("settings", "batch"), "another batch")):
        stale = json.loads(json.dumps(results))
        stale[change[0]][change[1]] = 3
        path.write_text(json.dumps(stale))
        with pytest.raises(ConfigError, match=part):
            load_seeds(path)
    del results["models"]["ablation-per-frame"]
    path.write_text(json.dumps(results))
    with pytest.raises(ConfigError, match="no retrained 'ablation-per-frame'"):
        load_seeds(path)
    path.write_text("{}")
    with pytest.raises(ConfigError, match="make ablation-seeds"):
        load_seeds(path)


def test_task_means_by_hand():
    assert ablation.task_means(hand_results())["ablation-per-frame"]["unconditional"] == pytest.approx(
        {"read": 0.75, "flicker": 0.15})


def test_seed_runs_change_the_recipe_in_its_seed_alone(tmp_path):
    for name in ABLATION:
        shipped_run, seeded = asdict(train_config(name, tmp_path)), asdict(train_config(name, tmp_path, seed=2))
        assert seeded.pop("seed") == 2 and shipped_run.pop("seed") == 0
        assert seeded == shipped_run
    with pytest.raises(ConfigError, match="no training setting sead"):
        train_config("ablation-attention", tmp_path, sead=2)


def test_measuring_seeds_without_their_weights_says_how_to_train_them(tmp_path):
    with pytest.raises(InputError, match="python -m tinydiff.ablation seeds"):
        measure_seeds(tmp_path, classifier=None, heldout=None)


def test_a_shipped_networks_own_seed_is_not_trained_again(tmp_path):
    with pytest.raises(InputError, match="seed 0 is ablation-per-frame's own"):
        ablation.train_seeds(tmp_path, seeds=(0,))
