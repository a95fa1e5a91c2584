"""Conditional models: condition encodings, networks that take a condition, the model
plumbing, the run API and the CLI (train --condition / sample --condition / encode)."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import Tensor, nn

import genlatent
from genlatent import registry
from genlatent.cli.main import cli
from genlatent.conditions import ConditionEncoding, attach, parse_names, parse_values
from genlatent.data import H5adDataset, H5Dataset
from genlatent.dataspec import DataSpec
from genlatent.errors import DataError, SpecError
from genlatent.parts import Decoder, Encoder

N = 240


def two_clusters(path, n: int = N, seed: int = 0) -> np.ndarray:
    """16-value binary vectors: the first half on for group "left", the second for "right",
    so the categorical column fully determines the data (plus 3 % noise)."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 2, n)
    x = np.zeros((n, 16), np.float32)
    x[group == 0, :8] = 1
    x[group == 1, 8:] = 1
    flip = rng.random((n, 16)) < 0.03
    x = np.where(flip, 1 - x, x).astype(np.float32)
    with h5py.File(path, "w") as f:
        f["x"] = x
        f["group"] = np.array([b"left", b"right"])[group]
        f["T"] = rng.uniform(1.0, 3.0, n).astype(np.float32)
        f["batch"] = (np.arange(n) % 3).astype(np.int64)
        f["short"] = np.zeros(n - 1, np.float32)
    return group


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("cond") / "two.h5"
    two_clusters(path)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data):
    """A conditional VAE on the two clusters, trained once through the run API."""
    out = tmp_path_factory.mktemp("runs") / "cond"
    genlatent.train(
        data=data, out=out, condition=["group", "T"], encoder="mlp", decoder="mlp",
        latent_dim=2, set=["encoder.hidden=[32]", "decoder.hidden=[32]"], epochs=25,
        lr=1e-2, batch_size=32, plots=False,
    )
    return out


# --------------------------------------------------------------------------- encodings


def test_measure_numeric_and_categorical(data):
    ds = H5Dataset(data)
    enc = ConditionEncoding.measure(ds, ["T", "group", "batch"])
    t = h5py.File(data)["T"][()].astype(np.float64)
    numeric, group, batch = enc.columns
    assert numeric.kind == "numeric" and numeric.mean == pytest.approx(t.mean(), rel=1e-6)
    assert numeric.std == pytest.approx(t.std(), rel=1e-5)
    assert group.categories == ("left", "right")
    assert batch.kind == "categorical" and batch.categories == ("0", "1", "2")  # integer codes
    assert enc.dim == 1 + 2 + 3
    matrix = enc.encode_dataset(ds)
    assert matrix.shape == (N, 6)
    assert np.allclose(matrix[:, 0].mean(), 0, atol=1e-5) and np.allclose(matrix[:, 0].std(), 1)
    assert np.array_equal(matrix[:, 1:3].sum(1), np.ones(N))
    assert ConditionEncoding.from_spec(enc.to_spec()) == enc
    forced = ConditionEncoding.measure(ds, ["batch:numeric"])
    assert forced.columns[0].kind == "numeric" and forced.dim == 1


def test_encode_values_and_decode(data):
    enc = ConditionEncoding.measure(H5Dataset(data), ["group", "T"])
    v = enc.encode_values({"group": "right", "T": enc.columns[1].mean}, 3)
    assert v.shape == (3, 3) and torch.equal(v[0], torch.tensor([0.0, 1.0, 0.0]))
    per_row = enc.encode_values({"group": ["left", "right"], "T": [1.0, 2.0]}, 2)
    back = enc.decode(per_row.numpy())
    assert list(back["group"]) == ["left", "right"]
    assert np.allclose(back["T"], [1.0, 2.0], atol=1e-5)
    assert parse_values(["T=2.5", "group=left"]) == {"T": 2.5, "group": "left"}
    assert parse_names(["T", "n:numeric"]) == [("T", None), ("n", "numeric")]


@pytest.mark.parametrize(
    "call, fragments",
    [
        (lambda e: e.encode_values({"group": "middle", "T": 1.0}, 2),
         ["group='middle'", "unknown category", "left, right"]),
        (lambda e: e.encode_values({"T": 1.0}, 2), ["missing 'group'", "conditioned on"]),
        (lambda e: e.encode_values({"group": "left", "T": 1.0, "P": 2}, 2), ["unknown 'P'"]),
        (lambda e: e.encode_values({"group": "left", "T": "hot"}, 2), ["T='hot'", "a number"]),
    ],
)
def test_value_errors(data, call, fragments):
    enc = ConditionEncoding.measure(H5Dataset(data), ["group", "T"])
    with pytest.raises(DataError) as info:
        call(enc)
    assert "\n" not in str(info.value)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_data_errors(tmp_path, data):
    ds = H5Dataset(data)
    with pytest.raises(DataError, match=r"two.h5: no label dataset 'Tee'; datasets in the file"):
        ConditionEncoding.measure(ds, ["Tee"])
    with pytest.raises(DataError, match=r"short: labels have 239 rows but 'x' has 240"):
        ConditionEncoding.measure(ds, ["short"])
    with pytest.raises(SpecError, match="kind must be one of numeric, categorical"):
        parse_names(["T:ordinal"])
    with pytest.raises(DataError, match="holds categories .* cannot be numeric"):
        ConditionEncoding.measure(ds, ["group:numeric"])
    bad = tmp_path / "nan.h5"
    with h5py.File(bad, "w") as f:
        f["x"] = np.zeros((4, 3), np.float32)
        f["T"] = np.array([1.0, np.nan, 2.0, 3.0], np.float32)
        f["g"] = np.array([b"a", b"b", b"a", b"c"])
    with pytest.raises(DataError, match=r"nan.h5:T: condition 'T' has 1 NaN/inf values "
                                        r"\(first row 1\)"):
        ConditionEncoding.measure(H5Dataset(bad), ["T"])
    # a category never seen in training, met in another file
    known = ConditionEncoding.from_spec(
        [{"name": "g", "kind": "categorical", "categories": ["a", "b"]}])
    with pytest.raises(DataError, match=r"nan.h5:g: condition 'g' has category 'c' \(row 3\) "
                                        r"unseen in training; expected one of a, b"):
        attach(H5Dataset(bad), known)


def test_enum_and_h5ad_categorical_conditions(tmp_path):
    path = tmp_path / "enum.h5"
    kind = h5py.enum_dtype({"solid": 3, "liquid": 7, "gas": 11}, basetype="i1")
    with h5py.File(path, "w") as f:
        f["x"] = np.zeros((6, 4), np.float32)
        f.create_dataset("phase", data=np.array([3, 7, 11, 3, 7, 3], np.int8), dtype=kind)
    enc = ConditionEncoding.measure(H5Dataset(path), ["phase"])
    assert enc.columns[0].categories == ("solid", "liquid", "gas")
    assert enc.encode_dataset(H5Dataset(path)).argmax(1).tolist() == [0, 1, 2, 0, 1, 0]

    from test_data_h5ad import counts_matrix, write_h5ad  # the hand-written .h5ad layout

    h5ad = tmp_path / "cells.h5ad"
    write_h5ad(h5ad, counts_matrix(), sparse=True)
    ds = H5adDataset(h5ad)
    enc = ConditionEncoding.measure(ds, ["cell_type", "n_counts"])
    assert enc.columns[0].categories == ("B cell", "T cell", "NK")
    assert enc.columns[1].kind == "numeric"
    batch = attach(ds, enc).read([0, 1, 2])
    assert batch["condition"][:, :3].argmax(1).tolist() == [0, 1, 2]


# --------------------------------------------------------------------------- networks

SPEC_CONDITION = [
    {"name": "T", "kind": "numeric", "mean": 2.0, "std": 0.5},
    {"name": "g", "kind": "categorical", "categories": ["a", "b"]},
]
VOCAB = ["<pad>", "<bos>", "<eos>", "<unk>", "C", "O", "N"]
NETWORKS = [
    ("mlp", {"kind": "vectors", "shape": [10]}, "bernoulli"),
    ("cnn", {"kind": "grids", "shape": [1, 8, 8]}, "bernoulli"),
    ("gru", {"kind": "tokens", "shape": [6], "vocab": VOCAB}, "categorical"),
]


def _inputs(data: dict) -> tuple[Tensor, Tensor | None]:
    if data["kind"] == "tokens":
        x = torch.tensor([[4, 5, 6, 2, 0, 0], [5, 4, 2, 0, 0, 0], [6, 6, 6, 4, 2, 0]])
        return x, torch.tensor([4, 3, 5])
    return torch.rand(3, *data["shape"]), None


@pytest.mark.parametrize("name, data, likelihood", NETWORKS)
def test_networks_read_the_condition(name, data, likelihood):
    spec = {"data": data, "encoder": name, "decoder": name, "likelihood": likelihood,
            "latent_dim": 2, "condition": SPEC_CONDITION}
    model = genlatent.build(spec, seed=0).eval()
    assert model.encoder.condition_dim == model.decoder.condition_dim == 3
    assert "condition_dim" not in model.spec["encoder"]["params"]
    x, lengths = _inputs(data)
    c1, c2 = torch.zeros(3, 3), torch.tensor([[1.5, 0.0, 1.0]] * 3)
    with torch.no_grad():
        e1 = model.encoder(x, lengths=lengths, condition=c1)
        e2 = model.encoder(x, lengths=lengths, condition=c2)
        z = torch.randn(3, 2)
        d1 = model.decoder(z, x=x, lengths=lengths, condition=c1)
        d2 = model.decoder(z, x=x, lengths=lengths, condition=c2)
    assert not torch.allclose(e1, e2) and not torch.allclose(d1, d2)
    assert model.elbo(x, lengths, condition=c2)["neg_elbo"].shape == (3,)
    assert model.iwae_bound(x, 3, lengths, condition=c2).shape == (3,)
    out = model.sample(3, condition=c2[0])
    assert (out[0] if isinstance(out, tuple) else out).shape[0] == 3
    with pytest.raises(SpecError, match=r"conditioned on T, g: give condition= \(3, 3\)"):
        model.elbo(x, lengths)
    with pytest.raises(SpecError, match=r"condition has shape \[3, 2\], expected \[3, 3\]"):
        model.encode_mean(x, lengths, condition=torch.zeros(3, 2))


@pytest.mark.parametrize("name, data, likelihood", NETWORKS[:1])
def test_conditional_iwae_objective_and_vamp_refusal(name, data, likelihood):
    """IWAE training threads the condition through every draw; the VampPrior, made from the
    encoder's pseudo-inputs (which have no condition), is refused in one line."""
    spec = {"data": data, "encoder": name, "decoder": name, "likelihood": likelihood,
            "latent_dim": 2, "condition": SPEC_CONDITION,
            "objective": {"iwae_samples": 4}}  # fmt: skip
    model = genlatent.build(spec, seed=0)
    x, lengths = _inputs(data)
    c1, c2 = torch.zeros(3, 3), torch.tensor([[1.5, 0.0, 1.0]] * 3)
    torch.manual_seed(0)
    loss1, terms = model.objective(x, lengths, step=0, condition=c1)
    torch.manual_seed(0)
    loss2, _ = model.objective(x, lengths, step=0, condition=c2)
    assert loss1.shape == (3,) and "neg_iwae" in terms
    assert not torch.allclose(loss1, loss2)
    with pytest.raises(SpecError, match=r"prior 'vamp' is made from the encoder and cannot "
                       r"be used with conditions \(T, g\)"):  # fmt: skip
        genlatent.build({**spec, "prior": "vamp", "objective": {}})


@pytest.mark.parametrize("name, data, likelihood", NETWORKS)
def test_unconditioned_builds_are_unchanged(name, data, likelihood):
    """condition_dim=0 is today's network: same weights, no new params recorded."""
    spec = {"data": data, "encoder": name, "decoder": name, "likelihood": likelihood,
            "latent_dim": 2}
    model = genlatent.build(spec, seed=3)
    assert "condition" not in model.spec and model.condition_dim == 0
    assert "condition_dim" not in model.spec["decoder"]["params"]
    enc_cls, dec_cls = registry.encoders.get(name), registry.decoders.get(name)
    ds = DataSpec.from_dict(data)
    with torch.random.fork_rng():
        torch.manual_seed(3)
        explicit = enc_cls(ds, 4, condition_dim=0)
    torch.manual_seed(3)
    implicit = enc_cls(ds, 4)
    for a, b in zip(explicit.state_dict().values(), implicit.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    num = len(VOCAB) if name == "gru" else 1
    assert sum(p.numel() for p in dec_cls(ds, 2, num, condition_dim=0).parameters()) == sum(
        p.numel() for p in dec_cls(ds, 2, num).parameters()
    )
    with pytest.raises(SpecError, match="this model is not conditional"):
        x, lengths = _inputs(data)
        model.elbo(x, lengths, condition=torch.zeros(3, 1))


class _PlainEncoder(Encoder):
    kinds = frozenset({"vectors"})

    def __init__(self, data: DataSpec, out_features: int) -> None:
        super().__init__(data, out_features)
        self.linear = nn.Linear(data.size, out_features)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.linear(x.flatten(1))


class _PlainDecoder(Decoder):
    kinds = frozenset({"vectors"})

    def __init__(self, data: DataSpec, latent_dim: int, num_params: int) -> None:
        super().__init__(data, latent_dim, num_params)
        self.linear = nn.Linear(latent_dim, num_params * data.size)

    def forward(self, z: Tensor, x: Tensor | None = None, lengths: Tensor | None = None) -> Tensor:
        return self.linear(z).view(z.shape[0], self.num_params, *self.data.shape)


def test_plugin_network_without_condition_dim():
    registry.encoders.add("cond_test_plain", _PlainEncoder, replace=True)
    registry.decoders.add("cond_test_plain", _PlainDecoder, replace=True)
    try:
        spec = {"data": {"kind": "vectors", "shape": [5]}, "encoder": "cond_test_plain",
                "decoder": "cond_test_plain", "latent_dim": 2}
        model = genlatent.build(spec)  # unconditioned: built and used as before
        assert model.elbo(torch.rand(2, 5))["kl"].shape == (2,)
        with pytest.raises(SpecError, match=r"decoder 'cond_test_plain' cannot be conditioned: "
                                            r"its constructor takes no 'condition_dim'"):
            genlatent.build({**spec, "condition": SPEC_CONDITION})
    finally:
        registry.encoders.unregister("cond_test_plain")
        registry.decoders.unregister("cond_test_plain")


def test_bad_spec_condition():
    spec = {"data": {"kind": "vectors", "shape": [5]}, "latent_dim": 2}
    with pytest.raises(SpecError, match="'T' needs a finite mean and a std > 0"):
        genlatent.build({**spec, "condition": [{"name": "T", "kind": "numeric", "mean": 0,
                                                "std": 0}]})
    with pytest.raises(SpecError, match="kind 'ordinal'"):
        genlatent.build({**spec, "condition": [{"name": "T", "kind": "ordinal"}]})


def test_saved_model_keeps_its_encoding(tmp_path):
    spec = {"data": {"kind": "vectors", "shape": [6]}, "encoder": "mlp", "decoder": "mlp",
            "latent_dim": 2, "condition": SPEC_CONDITION}
    model = genlatent.build(spec, seed=0).eval()
    model.save(tmp_path / "m")
    again = genlatent.load(tmp_path / "m").eval()
    assert again.spec["condition"] == SPEC_CONDITION and again.conditions == model.conditions
    x, c = torch.rand(4, 6), torch.randn(4, 3)
    assert torch.equal(model.encode_mean(x, condition=c), again.encode_mean(x, condition=c))


# --------------------------------------------------------------------------- runs and CLI


def test_condition_decides_the_cluster(trained):
    """The group fully determines the data: samples at each group land in its cluster."""
    run = genlatent.load_run(trained)
    assert run.config["data"]["condition"] == ["group", "T"]
    assert [c["name"] for c in run.spec["condition"]] == ["group", "T"]
    for group, (on, off) in {"left": (slice(0, 8), slice(8, 16)),
                             "right": (slice(8, 16), slice(0, 8))}.items():
        out = run.sample(64, condition={"group": group, "T": 2.0})
        x = out["x"]
        assert x[:, on].mean() > 0.85 and x[:, off].mean() < 0.15, (group, x.mean(0))
        assert out["condition"].shape == (64, 3)


def test_cli_round_trip(tmp_path, data, trained):
    runner = CliRunner()
    samples = tmp_path / "s.h5"
    result = runner.invoke(cli, ["sample", str(trained), "-n", "20", "--condition", "group=right",
                                 "--condition", "T=1.5", "--draw", "--out", str(samples)])
    assert result.exit_code == 0, result.output
    with h5py.File(samples) as f:
        assert f["x"].shape == (20, 16)
        assert set(f["group"][()].tolist()) == {b"right"}
        assert np.allclose(f["T"][()], 1.5)
        assert f["x"][:, 8:].mean() > 0.8
    codes = tmp_path / "codes.h5"
    result = runner.invoke(cli, ["encode", str(trained), str(data), "--out", str(codes)])
    assert result.exit_code == 0, result.output
    decoded = tmp_path / "decoded.h5"
    result = runner.invoke(cli, ["decode", str(trained), str(codes), "--out", str(decoded)])
    assert result.exit_code == 0, result.output
    with h5py.File(decoded) as f, h5py.File(data) as d:
        agree = (f["x"][()] > 0.5) == (d["x"][()] > 0.5)
        assert agree.mean() > 0.9  # each row decodes into its own cluster
    result = runner.invoke(cli, ["evaluate", str(trained), str(data), "--iwae-samples", "3",
                                 "--json"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["info", str(trained)])
    assert "conditions: group (categorical, 2: left, right); T (numeric" in result.output


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--condition", "group=middle", "--condition", "T=1"], ["unknown category", "left"]),
        (["--condition", "T=1"], ["missing 'group'"]),
        (["--condition", "T"], ["expected NAME=VALUE"]),
        ([], ["conditioned on group, T"]),
    ],
)
def test_cli_sample_errors(tmp_path, trained, args, fragments):
    result = CliRunner().invoke(
        cli, ["sample", str(trained), "-n", "3", "--out", str(tmp_path / "s.h5"), *args]
    )
    assert result.exit_code == 2, result.output
    last = [line for line in result.stderr.splitlines() if line.strip()][-1]
    assert last.startswith("Error: ") and "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in last
    assert not (tmp_path / "s.h5").exists()


def test_cli_train_errors(tmp_path, data):
    result = CliRunner().invoke(cli, ["train", str(data), "--condition", "Tee", "--epochs", "1",
                                      "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "no label dataset 'Tee'" in result.stderr
    assert not (tmp_path / "r").exists()
    result = CliRunner().invoke(cli, ["train", str(data), "--condition", "T", "--print-config",
                                      "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.stderr
    printed = json.loads(result.output)
    assert printed["config"]["data"]["condition"] == ["T"]
    assert printed["spec"]["condition"][0]["kind"] == "numeric"


def test_config_key_and_val_file(tmp_path, data):
    """``[data] condition`` in a config; a --val file is encoded with the training encoding."""
    from genlatent.runs import prepare

    val = tmp_path / "val.h5"
    two_clusters(val, n=40, seed=1)
    plan = prepare({"data": {"path": str(data), "val": str(val), "condition": ["group"]}},
                   out=tmp_path / "r", encoder="mlp", decoder="mlp")
    assert plan.spec["condition"] == [
        {"name": "group", "kind": "categorical", "categories": ["left", "right"]}
    ]
    assert plan.val.read([0, 1])["condition"].shape == (2, 2)
    assert plan.train.condition_encoding == plan.val.condition_encoding
    assert not (tmp_path / "r").exists()  # prepare writes nothing
