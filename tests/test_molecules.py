"""Molecules: SELFIES tokens, the objectives that keep z in use, and the molecule metrics."""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import genlatent
from genlatent.analysis import molecules as mol
from genlatent.data import import_smiles, open_dataset
from genlatent.data.tokens import (
    Vocabulary,
    encoding_of,
    to_smiles,
    tokenize_molecule,
)
from genlatent.dataspec import DataSpec
from genlatent.errors import DataError, SpecError

SAMPLES = Path(__file__).resolve().parents[1] / "datasets" / "samples"
TRAIN_FILE = SAMPLES / "moses_train_2k.csv"


def read_smiles(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines()[1:] if line.strip()]


def _module(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


selfies_only = pytest.mark.skipif(not _module("selfies"), reason="selfies not installed (chem)")
rdkit_only = pytest.mark.skipif(not _module("rdkit"), reason="rdkit not installed (chem)")

MOLECULES = ["CCO", "c1ccccc1", "CC(=O)Oc1ccccc1C(=O)O", "C1CC1N", "Clc1ccc(Br)cc1"]


# --------------------------------------------------------------------------- SELFIES


@selfies_only
@rdkit_only
def test_selfies_tokens_decode_to_the_same_molecule():
    for smiles in MOLECULES + read_smiles(TRAIN_FILE)[:50]:
        tokens = tokenize_molecule(smiles, "selfies")
        assert all(t.startswith("[") or t == "." for t in tokens)
        assert mol.canonical(to_smiles("".join(tokens), "selfies")) == mol.canonical(smiles)


@selfies_only
def test_bad_selfies_decodes_to_nothing_instead_of_raising():
    assert to_smiles("[C][Xx", "selfies") == ""
    assert to_smiles("CCO", "smiles") == "CCO"
    with pytest.raises(DataError, match="encoding must be one of"):
        to_smiles("CCO", "inchi")


@selfies_only
def test_selfies_import_records_the_encoding(tmp_path):
    out = import_smiles(SAMPLES / "moses_train_2k.csv", tmp_path / "sf.h5", encoding="selfies")
    with h5py.File(out, "r") as f:
        assert f["x"].attrs["tokenizer"] == "selfies"
    data = open_dataset(str(out), None)
    assert encoding_of(data.spec.extra) == "selfies"
    assert data.spec.to_dict()["extra"] == {"encoding": "selfies"}
    assert all(t.startswith("[") or t == "." for t in data.spec.vocab[4:])
    smiles = mol.decoded_dataset(data, limit=20)
    with h5py.File(out, "r") as f:
        raw = [s.decode() for s in f["smiles"][:20]]
    if _module("rdkit"):
        assert [mol.canonical(s) for s in smiles] == [mol.canonical(s) for s in raw]
    # SMILES files keep the spec they always had (no extra)
    plain = import_smiles(SAMPLES / "moses_train_2k.csv", tmp_path / "sm.h5")
    assert "extra" not in open_dataset(str(plain), None).spec.to_dict()


@selfies_only
def test_cli_selfies_import_and_vocab_from(tmp_path):
    from click.testing import CliRunner

    from genlatent.cli.main import cli

    runner = CliRunner()
    train, test = tmp_path / "train.h5", tmp_path / "test.h5"
    args = ["data", "import", "smiles", str(TRAIN_FILE), "--encoding", "selfies", "--out"]
    assert runner.invoke(cli, [*args, str(train)]).exit_code == 0
    result = runner.invoke(
        cli,
        ["data", "import", "smiles", str(SAMPLES / "moses_test_200.csv"), "--vocab-from",
         str(train), "--allow-unknown", "--out", str(test)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert encoding_of(open_dataset(str(test), None).spec.extra) == "selfies"
    result = runner.invoke(
        cli,
        ["data", "import", "smiles", str(TRAIN_FILE), "--vocab-from", str(train),
         "--encoding", "smiles", "--out", str(tmp_path / "bad.h5")],
    )  # fmt: skip
    assert result.exit_code == 2 and "holds selfies tokens" in result.output
    assert not (tmp_path / "bad.h5").exists()


def test_vocabulary_records_its_encoding():
    vocab = Vocabulary.build([["C", "C", "O"]], encoding="smiles")
    assert vocab.encoding == "smiles"
    assert vocab.decode_smiles(vocab.encode(["C", "C", "O"])) == "CCO"
    with pytest.raises(DataError, match="encoding"):
        Vocabulary(["C"], encoding="deepsmiles")


# --------------------------------------------------------------------------- one layout


def token_spec(vocab=("<pad>", "<bos>", "<eos>", "<unk>", "C", "O", "N")) -> dict:
    return {"kind": "tokens", "shape": [12], "vocab": list(vocab)}


def test_categorical_likelihood_has_one_parameter_per_token():
    """(B, num_params, *data.shape) holds for tokens: num_params is the vocabulary size."""
    model = genlatent.build({"data": token_spec(), "latent_dim": 4})
    assert model.likelihood.num_params == 7 == model.decoder.num_params
    x = torch.tensor([[4, 5, 2, 0], [6, 2, 0, 0]])
    out = model.decode(torch.randn(2, 4), x, torch.tensor([3, 2]))
    assert out.shape == (2, model.likelihood.num_params, 4)


# --------------------------------------------------------------------------- objectives


def tiny_vae(**objective):
    spec = {
        "data": {"kind": "vectors", "shape": [6]},
        "latent_dim": 3,
        "encoder": {"name": "mlp", "params": {"hidden": [8]}},
        "decoder": {"name": "mlp", "params": {"hidden": [8]}},
        "objective": objective,
    }
    return genlatent.build(spec, seed=0)


def test_cyclical_kl_weight_rises_then_holds_each_cycle():
    model = tiny_vae(beta=0.5, kl_schedule="cyclical", kl_cycle_steps=10, kl_cycle_ratio=0.4,
                     kl_cycles=2)  # fmt: skip
    weights = [model.kl_weight(s) for s in range(25)]
    assert weights[0] == 0 and weights[2] == pytest.approx(0.25) and weights[4] == 0.5
    assert weights[9] == 0.5 and weights[10] == 0 and weights[12] == pytest.approx(0.25)
    assert weights[20:] == [0.5] * 5  # two cycles, then beta for good
    assert model.kl_weight(None) == 0.5
    linear = tiny_vae(kl_warmup_steps=4)
    assert [linear.kl_weight(s) for s in (0, 2, 4, 9)] == [0, 0.5, 1, 1]


@pytest.mark.parametrize(
    "objective,match",
    [
        ({"kl_schedule": "cosine"}, "kl_schedule"),
        ({"kl_schedule": "cyclical"}, "kl_cycle_steps"),
        ({"kl_cycle_ratio": 1.5}, "kl_cycle_ratio"),
        ({"free_bits": -1}, "free_bits"),
    ],
)
def test_bad_objective_options_are_one_line_spec_errors(objective, match):
    with pytest.raises(SpecError, match=match) as info:
        tiny_vae(**objective)
    assert "\n" not in str(info.value)


def test_free_bits_floor_each_dimension_and_stop_its_gradient():
    """Loss KL = sum_d max(floor, batch-mean KL_d); below the floor a dimension's KL gets no
    gradient, above it gets the usual one; the reported KL stays the true one."""
    torch.manual_seed(0)
    model = tiny_vae(free_bits=0.5)
    x = torch.rand(16, 6)
    q = model.encode(x)
    per_dim = torch.distributions.kl_divergence(q.base_dist, model.prior().base_dist)
    means = per_dim.mean(0)
    floored = model._floored_kl(per_dim.sum(-1), per_dim)
    assert floored.mean().item() == pytest.approx(torch.clamp(means, min=0.5).sum().item())
    # drive one dimension's posterior far from the prior: only that one keeps a gradient
    loc = torch.zeros(16, 3, requires_grad=True)
    scale = torch.ones(16, 3)
    with torch.no_grad():
        shift = torch.tensor([3.0, 0.1, 0.0])
    q = torch.distributions.Normal(loc + shift, scale)
    kl_dim = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0))
    model._floored_kl(kl_dim.sum(-1), kl_dim).mean().backward()
    grad = loc.grad.abs().sum(0)
    assert grad[0] > 0 and grad[1] == 0 and grad[2] == 0
    _, metrics = model.loss({"x": x}, step=0)
    assert metrics["kl"].item() < 0.5 * 3  # the true KL, under the floor it was trained with


def test_free_bits_with_a_mixture_prior_floors_the_total():
    spec = {
        "data": {"kind": "vectors", "shape": [6]},
        "latent_dim": 2,
        "prior": {"name": "mixture", "params": {"components": 3}},
        "objective": {"free_bits": 100.0},
    }
    model = genlatent.build(spec, seed=0)
    loss, metrics = model.loss({"x": torch.rand(8, 6)}, step=5)
    assert loss.item() == pytest.approx(metrics["reconstruction"].item() + 200.0, rel=1e-5)


def test_cli_defaults_for_token_data_keep_z_in_use():
    """The CLI resolves the token objective (free bits, cyclical KL) and the GRU decoder's
    word dropout; the user's own settings win."""
    from genlatent.cli import config as cfg
    from genlatent.models.vae import TOKEN_OBJECTIVE

    data = DataSpec.from_dict(token_spec()).to_dict()
    spec = cfg.model_spec(cfg.default_config(), data)
    assert {k: spec["objective"][k] for k in TOKEN_OBJECTIVE} == TOKEN_OBJECTIVE
    model = genlatent.build(spec)
    assert model.free_bits > 0 and model.decoder.word_dropout > 0
    config = cfg.apply_assignments(cfg.default_config(), ["objective.free_bits=0"])
    assert cfg.model_spec(config, data)["objective"]["free_bits"] == 0
    vectors = cfg.model_spec(cfg.default_config(), {"kind": "vectors", "shape": [4]})
    assert vectors["objective"] == {}


# --------------------------------------------------------------------------- metrics


def test_wasserstein_1d_known_values():
    assert mol.wasserstein_1d([0.0, 1.0], [0.0, 1.0]) == 0
    assert mol.wasserstein_1d([0.0], [2.0]) == pytest.approx(2.0)
    assert mol.wasserstein_1d([0.0, 0.0, 3.0], [1.0]) == pytest.approx((1 + 1 + 2) / 3)
    assert math.isnan(mol.wasserstein_1d([], [1.0]))


@rdkit_only
def test_molecule_metrics_count_invalid_and_never_raise():
    samples = ["CCO", "OCC", "c1ccccc1", "C1CC", "", "not a molecule", "CC(=O)O"]
    out = mol.molecule_metrics(samples, train={"CCO"}, reference=["CCN", "CCCC", "c1ccccc1O"])
    assert out["samples"] == 7 and out["valid"] == 4
    assert out["validity"] == pytest.approx(4 / 7)
    assert out["unique@7"] == pytest.approx(3 / 4)  # CCO and OCC are one molecule
    assert out["novelty"] == pytest.approx(2 / 3)  # benzene and acetic acid are new
    assert 0 < out["internal_diversity"] < 1
    assert all(out[f"wasserstein_{p}"] > 0 for p in ("mw", "logp", "qed"))
    same = mol.molecule_metrics(["CCO"] * 5, reference=["CCO"])
    assert same["internal_diversity"] == pytest.approx(0)
    assert same["wasserstein_mw"] == pytest.approx(0)
    assert mol.same_molecule(["OCC", "CC", ""], ["CCO", "CCO", "CCO"]) == [True, False, False]
    assert mol.canonical_strings(["OCC", "garbage"]) == ["CCO", ""]


def test_metrics_without_rdkit_say_so(monkeypatch):
    monkeypatch.setattr(mol, "have_rdkit", lambda: False)
    out = mol.molecule_metrics(["CCO"], train={"CCO"})
    assert out == {"samples": 1, "note": out["note"]} and "RDKit" in out["note"]
    assert mol.same_molecule(["CCO", "OCC"], ["CCO", "CCO"]) == [True, False]
    assert any("note" in line for line in mol.format_metrics(out))


def test_decoded_strings_of_a_selfies_model_are_smiles():
    from genlatent.analysis.h5out import data_arrays, decode_tokens

    if not _module("selfies"):
        pytest.skip("selfies not installed (chem)")
    vocab = ["<pad>", "<bos>", "<eos>", "<unk>", "[C]", "[O]", "[=O]"]
    data = DataSpec(kind="tokens", shape=(5,), vocab=tuple(vocab), extra={"encoding": "selfies"})
    ids = np.array([[4, 4, 5, 2, 0], [4, 6, 2, 0, 0]])
    assert decode_tokens(data, ids) == ["CCO", "C=O"]
    arrays = data_arrays(data, {"x": ids, "lengths": np.array([4, 3])})
    assert arrays["x"][1]["tokenizer"] == "selfies"


# --------------------------------------------------------------------------- CLI hooks


@pytest.fixture(scope="module")
def tiny_token_run(tmp_path_factory):
    """An untrained tiny GRU VAE saved as a run folder whose config names its training file."""
    import json

    folder = tmp_path_factory.mktemp("mol")
    csv = folder / "mols.csv"
    csv.write_text("smiles\n" + "\n".join(["CCO", "c1ccccc1", "CC(=O)O", "CCN", "OCC(Cl)Br"] * 4))
    h5 = import_smiles(csv, folder / "mols.h5")
    spec = {
        "latent_dim": 2,
        "data": open_dataset(str(h5), None).spec.to_dict(),
        "encoder": {"name": "gru", "params": {"hidden_size": 8, "embedding_dim": 4}},
        "decoder": {"name": "gru", "params": {"hidden_size": 8, "embedding_dim": 4}},
    }
    run = folder / "run"
    genlatent.build(spec, seed=0).save(run / "model")
    (run / "config.json").write_text(json.dumps({"data": {"path": str(h5), "key": "x"}}))
    (run / "metrics.jsonl").write_text("")
    return run, h5


def test_evaluate_reports_molecule_metrics(tiny_token_run):
    import json

    from click.testing import CliRunner

    from genlatent.cli.main import cli

    run, h5 = tiny_token_run
    args = ["evaluate", str(run), str(h5), "--iwae-samples", "0", "--molecules", "30"]
    result = CliRunner().invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)["molecules"]
    assert got["samples"] == 30 and 0 <= got["reconstruction"] <= 1 and got["reconstructed"] == 20
    if _module("rdkit"):
        assert 0 <= got["validity"] <= 1 and "novelty" in got and "wasserstein_qed" in got
    text = CliRunner().invoke(cli, args)
    assert text.exit_code == 0 and "reconstruction" in text.stdout
    skipped = CliRunner().invoke(cli, [*args[:-1], "0", "--json"])
    assert "molecules" not in json.loads(skipped.stdout)


@rdkit_only
def test_sample_can_write_canonical_smiles(tiny_token_run, tmp_path):
    from click.testing import CliRunner

    from genlatent.cli.main import cli

    run, _ = tiny_token_run
    out = tmp_path / "s.h5"
    result = CliRunner().invoke(cli, ["sample", str(run), "-n", "12", "--canonical", "--out",
                                      str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    with h5py.File(out, "r") as f:
        strings = [s.decode() for s in f["strings"][()]]
        assert f["strings"].attrs["canonical"] == "rdkit"
    assert len(strings) == 12
    assert all(s == "" or mol.canonical(s) == s for s in strings)
