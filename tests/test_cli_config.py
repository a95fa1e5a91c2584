"""The run config (genlatent.config): TOML/JSON files, --set assignments, flags, precedence."""

from __future__ import annotations

import json

import pytest

from genlatent import config as cfg
from genlatent.errors import GenlatentError

GRIDS = {"kind": "grids", "shape": [1, 8, 8]}


def test_parse_value_reads_json_and_keeps_other_text() -> None:
    assert cfg.parse_value("[400, 200]") == [400, 200]
    assert cfg.parse_value("3e-4") == pytest.approx(3e-4)
    assert cfg.parse_value("true") is True
    assert cfg.parse_value("null") is None
    assert cfg.parse_value("cnn") == "cnn"
    assert cfg.parse_value('"10"') == "10"


def test_assignments_set_part_params_sections_and_top_level() -> None:
    config = cfg.apply_assignments(
        cfg.default_config(),
        ["encoder.hidden=[400,200]", "encoder.name=mlp", "train.lr=0.001", "latent_dim=8",
         "objective.beta=0.5", "data.key=images"],
    )
    assert config["encoder"] == {"name": "mlp", "params": {"hidden": [400, 200]}}
    assert config["train"] == {"lr": 0.001}
    assert config["latent_dim"] == 8
    assert config["objective"] == {"beta": 0.5}
    assert config["data"]["key"] == "images"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("encoder.hidden", "expected SECTION.KEY=VALUE"),
        ("encodr.hidden=3", "did you mean 'encoder'"),
        ("latent=3", "unknown setting 'latent'"),
        ("data.kye=x", "did you mean 'key'"),
        ("encoder.=3", "missing the key"),
    ],
)
def test_bad_assignments_name_the_problem(text: str, fragment: str) -> None:
    with pytest.raises(GenlatentError, match=fragment.replace("(", r"\(")):
        cfg.apply_assignments(cfg.default_config(), [text])


def test_toml_file_flat_and_nested_part_params(tmp_path) -> None:
    path = tmp_path / "run.toml"
    path.write_text(
        'latent_dim = 4\nencoder = "mlp"\n'
        '[decoder]\nname = "mlp"\nhidden = [32]\n'
        '[prior]\nname = "mixture"\nparams = { components = 3 }\n'
        "[train]\nepochs = 7\n[data]\npath = 'x.h5'\nkey = 'x'\n"
    )
    config = cfg.merge_file(cfg.default_config(), cfg.read_config_file(path), str(path))
    assert config["latent_dim"] == 4
    assert config["encoder"] == {"name": "mlp", "params": {}}
    assert config["decoder"] == {"name": "mlp", "params": {"hidden": [32]}}
    assert config["prior"] == {"name": "mixture", "params": {"components": 3}}
    assert config["train"] == {"epochs": 7}
    assert config["data"]["path"] == "x.h5"


def test_recorded_json_config_reads_back_identically(tmp_path) -> None:
    config = cfg.apply_assignments(cfg.default_config(), ["prior.name=mixture",
                                                          "prior.components=3"])
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    again = cfg.merge_file(cfg.default_config(), cfg.read_config_file(path), str(path))
    assert again == config


def test_bad_files_are_one_line_errors(tmp_path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("latent_dim = = 3\n")
    with pytest.raises(GenlatentError, match="not valid TOML"):
        cfg.read_config_file(bad)
    with pytest.raises(GenlatentError, match="config file not found"):
        cfg.read_config_file(tmp_path / "missing.toml")
    with pytest.raises(GenlatentError, match="did you mean 'latent_dim'"):
        cfg.merge_file(cfg.default_config(), {"latent_dims": 3}, "run.toml")
    with pytest.raises(GenlatentError, match=r"\[train\] must be a table"):
        cfg.merge_file(cfg.default_config(), {"train": 3}, "run.toml")


def test_flags_win_over_file_and_renaming_a_part_drops_its_params() -> None:
    config = cfg.merge_file(
        cfg.default_config(),
        {"encoder": {"name": "mlp", "hidden": [64]}, "latent_dim": 4, "train": {"epochs": 3}},
        "run.toml",
    )
    config, notes = cfg.apply_flags(
        config, {"encoder": "cnn", "latent_dim": 9, "epochs": 5, "lr": None, "key": "images"}
    )
    assert config["encoder"] == {"name": "cnn", "params": {}}
    assert config["latent_dim"] == 9
    assert config["train"] == {"epochs": 5}
    assert config["data"]["key"] == "images"
    assert len(notes) == 1 and "dropped" in notes[0]
    same, notes = cfg.apply_flags(
        cfg.merge_file(cfg.default_config(), {"encoder": {"name": "mlp", "hidden": [64]}}, "f"),
        {"encoder": "mlp"},
    )
    assert same["encoder"]["params"] == {"hidden": [64]} and notes == []


def test_model_spec_fills_default_part_names_for_nameless_params() -> None:
    config = cfg.apply_assignments(cfg.default_config(), ["decoder.hidden=[16]"])
    spec = cfg.model_spec(config, {"kind": "vectors", "shape": [5]})
    assert spec["decoder"] == {"name": "mlp", "params": {"hidden": [16]}}
    assert spec["encoder"]["name"] == "mlp"
    spec = cfg.model_spec(cfg.default_config(), GRIDS)
    assert spec["encoder"]["name"] == "cnn" and spec["likelihood"]["name"] == "bernoulli"


def test_resolve_config_layers_base_file_set_flags(tmp_path) -> None:
    base = tmp_path / "config.json"
    base.write_text(json.dumps({"latent_dim": 3, "train": {"epochs": 2, "lr": 0.01},
                                "data": {"path": "a.h5"}}))
    toml = tmp_path / "run.toml"
    toml.write_text("[train]\nepochs = 4\nbatch_size = 8\n")
    config, notes = cfg.resolve_config(
        toml, base=base, assignments=["train.epochs=6", "train.batch_size=16"],
        flags={"epochs": 9, "seed": None, "path": "b.h5"},
    )
    assert config["train"] == {"epochs": 9, "lr": 0.01, "batch_size": 16}
    assert config["latent_dim"] == 3 and config["data"]["path"] == "b.h5" and notes == []
    same, _ = cfg.resolve_config({"latent_dim": 3, "train": {"epochs": 9, "lr": 0.01,
                                                             "batch_size": 16},
                                  "data": {"path": "b.h5"}})
    assert same == config  # a mapping is layered exactly like a file
    with pytest.raises(GenlatentError, match="takes a single value"):
        cfg.resolve_config(flags={"objective": 1})
