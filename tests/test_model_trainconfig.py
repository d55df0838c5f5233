"""Training configs: TOML files as typed, frozen configs that serialise to exactly the TOML tables."""

from __future__ import annotations

import json
import tomllib
from dataclasses import replace

import pytest

from clustermass.errors import ConfigError, ModelError
from clustermass.model import workflow
from clustermass.model.registry import ModelRecord
from clustermass.model.trainconfig import CONFIG_DIR, TrainConfig, load_train_config


def _toml(name: str) -> dict:
    return tomllib.loads((CONFIG_DIR / f"{name}.toml").read_text())


def test_train_configs(tmp_path):
    quick, full = load_train_config("quick"), load_train_config("full")
    assert quick.name == "quick" and full.name == "full" and load_train_config(None) == quick
    assert full.stage1.n_clusters > quick.stage1.n_clusters
    user = tmp_path / "mine.toml"
    user.write_text("[stage1]\nepochs = 1\n")
    cfg = load_train_config(user)
    assert cfg.stage1.epochs == 1 and cfg.stage1.width == quick.stage1.width and cfg.name == "mine"
    assert cfg == replace(quick, name="mine", stage1=replace(quick.stage1, epochs=1))
    user.write_text("[stage1]\nepoch = 1\n")
    with pytest.raises(ConfigError, match="unknown key stage1.'epoch'"):
        load_train_config(user)
    with pytest.raises(ConfigError, match="does not exist"):
        load_train_config(tmp_path / "nope.toml")


def test_serialised_configs_are_the_toml_tables(tmp_path):
    """What model names hash and the registry stores is the merged TOML, key order and lists included."""
    quick = _toml("quick")
    full = {k: {**v, **_toml("full").get(k, {})} if isinstance(v, dict) else _toml("full").get(k, v)
            for k, v in quick.items()}
    for ref, plain in (("quick", quick), ("full", full)):
        cfg = load_train_config(ref)
        assert json.dumps(cfg.as_dict()) == json.dumps(plain)
        assert workflow._digest(cfg.as_dict(), "mock", [1, 2]) == workflow._digest(plain, "mock", [1, 2])
        assert isinstance(cfg.stage1.blocks, tuple) and cfg.as_dict()["stage1"]["blocks"] == list(cfg.stage1.blocks)
        assert TrainConfig.from_dict(json.loads(json.dumps(cfg.as_dict()))) == cfg  # a stored config rebuilds
    user = tmp_path / "ints.toml"
    user.write_text("softening = 3\n[stage2]\ndropout = 0\n")
    plain = load_train_config(user).as_dict()  # numbers stay as written, as the dicts hashed them
    assert json.dumps([plain["softening"], plain["stage2"]["dropout"]]) == "[3, 0]"


@pytest.mark.parametrize(("text", "message"), [
    ('[stage1]\nepochs = "12"\n', "stage1.epochs must be an integer, not '12'"),
    ("[stage1]\nepochs = 12.0\n", "stage1.epochs must be an integer, not 12.0"),
    ("[stage2]\nlr = true\n", "stage2.lr must be a number, not True"),
    ("tta = 1\n", "tta must be true or false, not 1"),
    ("[name]\nx = 1\n", "name must be a string, not {'x': 1}"),
    ("[stage1]\nblocks = 1\n", "stage1.blocks must be a list, not 1"),
    ('[stage2]\nkinds = ["cnn", 2]\n', "stage2.kinds[1] must be a string, not 2"),
])
def test_wrong_types_are_one_line_errors_naming_file_and_key(tmp_path, text, message):
    user = tmp_path / "bad.toml"
    user.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_train_config(user)
    assert str(err.value) == f"training config {user}: {message}"


def test_registered_models_rebuild_their_config():
    """A model's stored `train` dict gives back the typed config; keys it predates take quick's values."""
    full = load_train_config("full")
    record = ModelRecord(1, "hybrid-x", "hybrid", None, config={"train": full.as_dict()})
    assert record.train_config == full
    older = full.as_dict()
    del older["stage2"]["finetune_lr"]
    rebuilt = ModelRecord(1, "hybrid-x", "hybrid", None, config={"train": older}).train_config
    assert rebuilt.stage2.finetune_lr == load_train_config("quick").stage2.finetune_lr
    older["stage2"]["folds"] = "5"
    with pytest.raises(ConfigError, match="model 'hybrid-x': stored training config: stage2.folds must be an integer"):
        ModelRecord(1, "hybrid-x", "hybrid", None, config={"train": older}).train_config
    with pytest.raises(ModelError, match="no stored training config"):
        ModelRecord(1, "x", "richness", None).train_config


def test_optional_photometry_round_trips_and_leaves_other_configs_hashing_as_before(tmp_path):
    """stage2.photometry is optional: quick.toml has no such key, a config without it serialises (and
    hashes) as before, and a config with it keeps it through the registry's stored dict."""
    quick = load_train_config("quick")
    assert quick.stage2.photometry == () and "photometry" not in quick.as_dict()["stage2"]
    assert json.dumps(quick.as_dict()) == json.dumps(_toml("quick"))
    user = tmp_path / "phot.toml"
    user.write_text('[stage2]\nphotometry = ["bcg", "apertures"]\n')
    cfg = load_train_config(user)
    assert cfg.stage2.photometry == ("bcg", "apertures")
    assert cfg.as_dict()["stage2"]["photometry"] == ["bcg", "apertures"]
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.as_dict()))) == cfg
    record = ModelRecord(1, "hybrid-x", "hybrid", None, config={"train": cfg.as_dict()})
    assert record.train_config == cfg
    plain = replace(cfg, stage2=replace(cfg.stage2, photometry=()))
    assert workflow._digest(plain.as_dict()) != workflow._digest(cfg.as_dict())
    assert plain.as_dict() == replace(quick, name="phot").as_dict()
    user.write_text('[stage2]\nphotometry = "bcg"\n')
    with pytest.raises(ConfigError, match="stage2.photometry must be a list"):
        load_train_config(user)


@pytest.mark.parametrize(("text", "message"), [
    ('[stage2]\nphotometry = ["bgc"]\n', "stage2.photometry has 'bgc'; expected any of bcg, apertures"),
    ('[stage2]\nphotometry = ["bcg"]\nfinetune_epochs = 2\n', "stage2.photometry needs a frozen trunk"),
    ('[stage2]\npooling = ["mean", "ring"]\n', "stage2.pooling has 'ring'; expected any of mean, max, centre, rings"),
])
def test_stage2_needs_known_choices_and_a_frozen_trunk(tmp_path, text, message):
    user = tmp_path / "bad.toml"
    user.write_text(text)
    with pytest.raises(ConfigError, match=message):
        workflow.check_stage2(load_train_config(user).stage2)
