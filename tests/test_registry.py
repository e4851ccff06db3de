"""The registry of shipped models against the files, the manifest and the documents that quote it."""

import re
from dataclasses import asdict
from importlib import resources
from pathlib import Path

import pytest

import tinydiff
from tinydiff.checkpoint import load_checkpoint, sha256
from tinydiff.model import ModelConfig, preset
from tinydiff.motion_pipeline import MotionPipeline
from tinydiff.registry import CASCADE, MODELS, PRETRAINED, Recipe, manifest, record, shipped_table
from tinydiff.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = resources.files("tinydiff") / "weights"
TRAINED = [name for name, model in MODELS.items() if model.recipe is not None]


def test_every_shipped_file_is_in_the_manifest_with_its_sha256():
    entries = manifest()
    with_weights = {name for name, model in MODELS.items() if model.has_weights}
    assert set(entries) == with_weights
    for name in with_weights:
        assert sha256(WEIGHTS / f"{name}.pt") == entries[name]["sha256"], name


@pytest.mark.parametrize("name", TRAINED)
def test_shipped_weights_were_trained_with_their_declared_recipe(name):
    recipe, state = MODELS[name].recipe, load_checkpoint(WEIGHTS / f"{name}.pt")
    assert ModelConfig.from_dict(state["model_config"]) == preset(recipe.preset)
    assert state["step"] == recipe.steps
    # A setting added since a model was trained (timestep_power) is recorded by neither its checkpoint nor
    # its manifest entry: it trained at the default, as train.recipe_changes reads it.
    trained = {**asdict(TrainConfig()), **state["train_config"]}
    assert {key: trained[key] for key in recipe.train_settings()} == recipe.train_settings()
    entry = manifest()[name]
    defaults = {key: getattr(Recipe, key) for key in recipe.train_settings() if hasattr(Recipe, key)}
    assert {**defaults, **entry["recipe"]} == {"preset": recipe.preset, **recipe.train_settings()}
    assert entry["step"] == recipe.steps


def test_pretrained_builds_what_each_kind_declares():
    assert CASCADE in PRETRAINED and "classifier" not in PRETRAINED
    cascade = tinydiff.pretrained(CASCADE, device="cpu")
    assert [stage for stage in MODELS[CASCADE].stages] == ["digits-labelled", "animator"]
    assert cascade.draw.cfg == preset("digits-labelled") and cascade.write.modes == {"image"}
    assert isinstance(tinydiff.pretrained("motion", device="cpu"), MotionPipeline)
    assert isinstance(tinydiff.pretrained("writer", device="cpu"), tinydiff.Pipeline)


def test_the_make_targets_train_the_declared_recipes():
    makefile = (ROOT / "Makefile").read_text()
    for name in TRAINED:
        if name.startswith("ablation-"):
            assert "tinydiff.ablation train" in makefile
        elif name.startswith("motion-"):
            assert re.search(rf"tinydiff\.ship [^\n]*\b{name}\b", makefile), name
        else:
            target = re.search(rf"^([\w -]*\b{name}\b[\w -]*): install\n\t\$\(PY\) -m tinydiff\.ship \$@", makefile, re.M)
            assert target, f"make {name} does not run the registry's recipe"


@pytest.mark.parametrize("document", ["RESULTS.md"])
def test_documents_quote_the_registry(document):
    text = (ROOT / document).read_text()
    quoted = text.split("<!-- shipped:start -->\n")[1].split("\n<!-- shipped:end -->")[0]
    assert quoted == shipped_table(), f"{document}'s table of shipped models is stale: paste registry.shipped_table()"


def test_record_writes_one_entry_and_keeps_the_others(tmp_path):
    path = tmp_path / "manifest.json"
    record("writer", "a" * 64, path, step=3)
    record("animator", "b" * 64, path, step=4)
    record("writer", "c" * 64, path, step=5)
    assert manifest(path) == {"animator": {"sha256": "b" * 64, "step": 4}, "writer": {"sha256": "c" * 64, "step": 5}}


def test_ship_trains_the_recipe_exports_and_records(tmp_path, fake_mnist, monkeypatch):
    from tinydiff import registry, ship

    recipe = registry.Recipe("tiny", steps=2, batch_size=2, lr=1e-3, cond_drop=0.2, checkpoint_every=1)
    monkeypatch.setitem(registry.MODELS, "tiny-test", registry.Shipped("tiny-test", "denoiser", "a test", recipe))
    monkeypatch.setattr(registry, "weights_folder", lambda: tmp_path)
    monkeypatch.setattr(ship, "weights_folder", lambda: tmp_path)
    digest = ship.train_and_ship("tiny-test", runs=tmp_path / "runs", data_root=str(fake_mnist), progress=False)
    entry = manifest(tmp_path / "manifest.json")["tiny-test"]
    assert entry["sha256"] == digest == sha256(tmp_path / "tiny-test.pt")
    assert entry["recipe"] == {"preset": "tiny", **recipe.train_settings()} and entry["step"] == 2
    state = load_checkpoint(tmp_path / "tiny-test.pt")
    assert state["train_config"]["threads"] == 2 and state["train_config"]["device"] == "cpu"
    assert ship.main(["cascade"]) == 2  # a combination of shipped models has no recipe of its own
