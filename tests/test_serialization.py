"""spec -> build -> save -> load round trips, and loading bad folders fails safely."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch

import genlatent
from genlatent.errors import CheckpointError, RegistryError, SpecError
from genlatent.serialization import sha256_file

SPECS = {
    "mlp-vectors": {
        "model": "vae",
        "latent_dim": 4,
        "data": {"kind": "vectors", "shape": [20]},
        "encoder": {"name": "mlp", "params": {"hidden": [16]}},
        "decoder": {"name": "mlp", "params": {"hidden": [16]}},
        "prior": {"name": "mixture", "params": {"components": 3}},
    },
    "cnn-grids": {
        "latent_dim": 3,
        "data": {"kind": "grids", "shape": [1, 12, 12]},
        "likelihood": "gaussian",
    },
    "ae": {"model": "ae", "latent_dim": 2, "data": {"kind": "vectors", "shape": [10]}},
}


def _inputs(model: genlatent.models.base.LatentModel) -> torch.Tensor:  # type: ignore[name-defined]
    return torch.rand(5, *model.data.shape)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_round_trip_gives_bit_identical_outputs(name: str, tmp_path: Path) -> None:
    model = genlatent.build(SPECS[name]).eval()
    x = _inputs(model)
    path = model.save(tmp_path / "model")
    loaded = genlatent.load(path)
    assert loaded.spec == model.spec == genlatent.spec.resolve_spec(SPECS[name])
    assert json.loads((path / "spec.json").read_text()) == model.spec
    assert type(loaded) is type(model)
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    z = torch.randn(5, model.latent_dim)
    assert torch.equal(model.decode(z), loaded.decode(z))
    assert torch.equal(model.reconstruct(x), loaded.reconstruct(x))
    meta = json.loads((path / "meta.json").read_text())
    assert meta["format"] == "genlatent-model"
    assert meta["genlatent_version"] == genlatent.__version__
    assert meta["parts"]["encoder"]["provider"] == "genlatent"
    assert meta["weights_sha256"] == sha256_file(path / "weights.pt")


def test_saving_again_replaces_the_model_atomically(tmp_path: Path) -> None:
    first = genlatent.build(SPECS["ae"])
    first.save(tmp_path / "m")
    torch.manual_seed(1)
    second = genlatent.build(SPECS["ae"])
    second.save(tmp_path / "m")
    loaded = genlatent.load(tmp_path / "m")
    key = next(iter(second.state_dict()))
    assert torch.equal(loaded.state_dict()[key], second.state_dict()[key])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temp folders left


def test_save_refuses_to_overwrite_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "thesis.tex").write_text("...")
    with pytest.raises(CheckpointError, match="not a genlatent model folder"):
        genlatent.build(SPECS["ae"]).save(tmp_path / "precious")
    assert (tmp_path / "precious" / "thesis.tex").exists()


def _saved(tmp_path: Path) -> Path:
    return genlatent.build(SPECS["ae"]).save(tmp_path / "m")


def test_tampered_weights_fail_the_checksum(tmp_path: Path) -> None:
    path = _saved(tmp_path)
    data = bytearray((path / "weights.pt").read_bytes())
    data[-100] ^= 0xFF
    (path / "weights.pt").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"weights.pt: checksum does not match"):
        genlatent.load(path)


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def test_pickled_code_is_never_executed_even_with_a_forged_checksum(tmp_path: Path) -> None:
    path = _saved(tmp_path)
    marker = tmp_path / "pwned"
    with open(path / "weights.pt", "wb") as handle:
        pickle.dump({"encoder.weight": _Exploit(marker)}, handle)
    meta = json.loads((path / "meta.json").read_text())
    meta["weights_sha256"] = sha256_file(path / "weights.pt")
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="not a readable genlatent weights file"):
        genlatent.load(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: (p / "meta.json").unlink(), "not a genlatent model folder"),
        (lambda p: (p / "meta.json").write_text("{not json"), "corrupt meta.json"),
        (lambda p: (p / "meta.json").write_text('{"format": "other"}'), "not a genlatent model"),
        (lambda p: (p / "weights.pt").unlink(), "weights.pt: file missing"),
        (lambda p: (p / "spec.json").write_text('{"data": 1}'), "cannot rebuild the model"),
    ],
)
def test_damaged_folders_fail_with_one_line_messages(tmp_path: Path, damage, message) -> None:
    path = _saved(tmp_path)
    damage(path)
    with pytest.raises(CheckpointError) as info:
        genlatent.load(path)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_load_of_a_file_or_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "model.pt").write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(CheckpointError, match="is a folder"):
        genlatent.load(tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match="no such model folder"):
        genlatent.load(tmp_path / "nothing")


def test_spec_errors_name_the_part_and_what_was_expected() -> None:
    base = {"data": {"kind": "vectors", "shape": [8]}}
    with pytest.raises(RegistryError, match=r"unknown prior 'mixtur'; did you mean 'mixture'\?"):
        genlatent.build({**base, "prior": "mixtur"})
    with pytest.raises(SpecError, match=r"decoder 'gru' does not fit vectors data"):
        genlatent.build({**base, "decoder": "gru"})
    with pytest.raises(SpecError, match=r"likelihood 'categorical' does not fit vectors data"):
        genlatent.build({**base, "likelihood": "categorical"})
    with pytest.raises(SpecError, match=r"encoder 'mlp' has no parameter 'no_such_param'"):
        genlatent.build({**base, "encoder": {"name": "mlp", "params": {"no_such_param": 1}}})
    with pytest.raises(SpecError, match="latent_dim"):
        genlatent.build({**base, "latent_dim": 0})
    with pytest.raises(SpecError, match="unknown spec field"):
        genlatent.build({**base, "laten_dim": 3})
    with pytest.raises(SpecError, match="data kind must be one of"):
        genlatent.build({"data": {"kind": "pictures", "shape": [3]}})
