"""Every CLI command driven through click's runner (and a few as real subprocesses) on tiny
data made here: exit codes, outputs' shapes and contents, one-line errors, real PNGs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

import genlatent
from genlatent.cli.main import cli
from genlatent.data import write_h5

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ROOT = Path(__file__).resolve().parents[1]


def invoke(*args: str, ok: bool = True):
    """Run ``genlatent ARGS`` in-process; check the exit status (0, or 2 for errors)."""
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, f"exit {result.exit_code}: {result.stderr}"
    return result


def assert_user_error(result, *fragments: str) -> None:
    """Exit 2, one ``Error:`` line on stderr naming the problem, no traceback."""
    assert result.exit_code == 2, result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("Error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]


def assert_png(path: Path, min_side: int = 100) -> None:
    """A real PNG image that matplotlib reads back, of plausible size."""
    import matplotlib.image as mpimg

    assert path.read_bytes()[:8] == PNG_SIGNATURE, path
    image = mpimg.imread(path)
    assert image.ndim == 3 and min(image.shape[:2]) >= min_side, image.shape
    assert float(image.std()) > 0.0  # not a blank canvas


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """Tiny datasets: vectors with labels, 8x8 images, and SMILES tokens."""
    folder = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 96)
    x = (rng.random((96, 12)) < (0.2 + 0.3 * y[:, None])).astype(np.float32)
    write_h5(folder / "vec.h5", x, labels={"y": y}, attrs={"kind": "vectors"},
             label_attrs={"y": {"label_names": ["a", "b", "c"]}})
    images = np.zeros((40, 1, 8, 8), dtype=np.uint8)
    for i in range(40):
        images[i, 0, i % 8, :] = 255
    write_h5(folder / "img.h5", images, labels={"y": np.arange(40) % 8},
             attrs={"kind": "grids", "scale": 1 / 255})
    (folder / "mols.csv").write_text(
        "smiles,mw\n" + "\n".join(f"{s},{i}" for i, s in enumerate(
            ["CCO", "c1ccccc1", "CC(=O)O", "CCN", "OCC(Cl)Br", "CCCC", "C=CC", "N#CC"] * 3))
        + "\n"
    )
    return folder


@pytest.fixture(scope="module")
def run_dir(data_dir, tmp_path_factory) -> Path:
    """One tiny VAE trained through the CLI (2 epochs), shared by the read-only tests."""
    out = tmp_path_factory.mktemp("runs") / "vec"
    invoke("train", data_dir / "vec.h5", "--encoder", "mlp", "--decoder", "mlp",
           "--set", "encoder.hidden=[16]", "--set", "decoder.hidden=[16]", "--latent-dim", 3,
           "--epochs", 2, "--batch-size", 32, "--seed", 1, "--set", "train.lr=0.01",
           "--out", out)
    return out


@pytest.fixture(scope="module")
def image_model(data_dir, tmp_path_factory) -> Path:
    """An untrained CNN VAE on 8x8 images saved as a bare model folder (no training)."""
    spec = {"latent_dim": 2, "data": {"kind": "grids", "shape": [1, 8, 8]},
            "encoder": {"name": "cnn", "params": {"channels": [4]}},
            "decoder": {"name": "cnn", "params": {"channels": [4]}}}
    folder = tmp_path_factory.mktemp("models") / "cnn"
    genlatent.build(spec).save(folder)
    return folder


@pytest.fixture(scope="module")
def token_model(data_dir, tmp_path_factory) -> tuple[Path, Path]:
    """Imported SMILES and an untrained GRU VAE for them (a bare model folder)."""
    h5 = data_dir / "mols.h5"
    invoke("data", "import", "smiles", data_dir / "mols.csv", "--labels", "mw", "--out", h5)
    data = genlatent.H5Dataset(h5)
    spec = {"latent_dim": 2, "data": data.spec.to_dict(),
            "encoder": {"name": "gru", "params": {"hidden_size": 8, "embedding_dim": 4}},
            "decoder": {"name": "gru", "params": {"hidden_size": 8, "embedding_dim": 4}}}
    folder = tmp_path_factory.mktemp("models") / "gru"
    genlatent.build(spec).save(folder)
    return folder, h5


def read_h5(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in f}


# --------------------------------------------------------------------------- help, plugins


COMMANDS = [["train"], ["evaluate"], ["encode"], ["decode"], ["reconstruct"], ["sample"],
            ["interpolate"], ["plot"], ["data"], ["data", "import"], ["data", "import", "npy"],
            ["data", "import", "smiles"], ["data", "import", "idx"], ["data", "info"],
            ["plugins"], ["info"]]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help_with_examples(command: list[str]) -> None:
    result = invoke(*command, "--help")
    assert "Usage: " in result.stdout
    assert "Example" in result.stdout or "Formats:" in result.stdout
    assert "genlatent " + command[0] in result.stdout or command == ["data", "import"]


def test_plugins_lists_parts_by_kind_with_provider() -> None:
    out = invoke("plugins").stdout
    lines = out.splitlines()
    assert "encoders:" in lines and "priors:" in lines and "likelihoods:" in lines
    encoders = lines[lines.index("encoders:") + 1 : lines.index("decoders:")]
    assert any(line.split()[:2] == ["mlp", "genlatent"] for line in encoders)


# --------------------------------------------------------------------------- train


def test_train_writes_the_run_folder(run_dir, data_dir) -> None:
    assert (run_dir / "model" / "meta.json").is_file()
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all(np.isfinite(r["train_loss"]) and np.isfinite(r["val_loss"]) for r in rows)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["encoder"] == {"name": "mlp", "params": {"hidden": [16]}}
    assert config["prior"]["name"] == "standard_normal"  # defaults recorded, resolved
    assert config["train"] == {"epochs": 2, "batch_size": 32, "lr": 0.01, "seed": 1}
    assert config["data"]["path"] == str(data_dir / "vec.h5") and config["data"]["key"] == "x"
    model = genlatent.load(run_dir / "model")
    assert model.latent_dim == 3 and model.spec["encoder"]["params"]["hidden"] == [16]
    for name in ("curves", "latent", "reconstructions", "samples", "interpolations"):
        assert_png(run_dir / "plots" / f"{name}.png")


def test_train_config_file_then_set_then_flags(data_dir, tmp_path) -> None:
    config = tmp_path / "run.toml"
    config.write_text(
        'latent_dim = 5\n[encoder]\nname = "mlp"\nhidden = [7]\n'
        '[prior]\nname = "mixture"\ncomponents = 3\n[train]\nepochs = 4\nlr = 0.5\n'
        f'[data]\npath = "{data_dir / "vec.h5"}"\nval_fraction = 0.25\n'
    )
    result = invoke("train", "--config", config, "--set", "prior.components=4",
                    "--set", "train.lr=0.1", "--lr", "0.2", "--latent-dim", "6",
                    "--out", tmp_path / "run", "--print-config")
    resolved = json.loads(result.stdout)
    assert resolved["config"]["train"] == {"epochs": 4, "lr": 0.2}
    assert resolved["spec"]["latent_dim"] == 6
    assert resolved["spec"]["prior"]["name"] == "mixture"  # the spec is resolved: all params
    assert resolved["spec"]["prior"]["params"]["components"] == 4
    assert resolved["spec"]["encoder"]["params"]["hidden"] == [7]
    assert resolved["spec"]["data"] == {"kind": "vectors", "shape": [12], "dtype": "float32"}
    assert not (tmp_path / "run").exists()  # --print-config writes nothing


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["MISSING.h5"], ["MISSING.h5", "not found"]),
        (["{vec}", "--key", "images"], ["no dataset 'images'", "x, y"]),
        (["{vec}", "--encoder", "mpl"], ["unknown encoder 'mpl'", "did you mean 'mlp'"]),
        (["{vec}", "--prior", "mixtur"], ["did you mean 'mixture'"]),
        (["{vec}", "--set", "encoder.hiden"], ["expected SECTION.KEY=VALUE"]),
        (["{vec}", "--set", "train.epohcs=3"], ["train.epohcs", "did you mean 'epochs'"]),
        (["{vec}", "--encoder", "cnn"], ["encoder 'cnn' does not fit vectors data"]),
        (["{vec}", "--config", "nope.toml"], ["nope.toml", "not found"]),
    ],
)
def test_train_bad_input_is_one_line_and_writes_nothing(data_dir, tmp_path, args, fragments):
    args = [a.format(vec=data_dir / "vec.h5") for a in args]
    out = tmp_path / "run"
    result = invoke("train", *args, "--epochs", "1", "--out", out, ok=False)
    assert_user_error(result, *fragments)
    assert not out.exists()


def test_debug_flag_shows_the_traceback(tmp_path) -> None:
    result = CliRunner().invoke(cli, ["--debug", "train", str(tmp_path / "x.h5"), "--out",
                                      str(tmp_path / "r")])
    assert isinstance(result.exception, genlatent.GenlatentError)


def test_train_refuses_an_existing_run_and_resumes_it(run_dir, data_dir, tmp_path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    before = (copy / "metrics.jsonl").read_text()
    result = invoke("train", data_dir / "vec.h5", "--out", copy, ok=False)
    assert_user_error(result, "already holds a run", "--resume")
    assert (copy / "metrics.jsonl").read_text() == before
    result = invoke("train", "--out", copy, "--resume", "--epochs", "3", "--no-plots")
    rows = [json.loads(line) for line in (copy / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert rows[:2] == [json.loads(line) for line in before.splitlines()]
    assert "val_loss" in result.stdout
    assert json.loads((copy / "config.json").read_text())["train"]["epochs"] == 3


# --------------------------------------------------------------------------- evaluate


def test_evaluate_json_is_consistent_with_the_model(run_dir, data_dir) -> None:
    result = invoke("evaluate", run_dir, data_dir / "vec.h5", "--iwae-samples", "20", "--json")
    numbers = json.loads(result.stdout)  # exactly one JSON object on stdout
    assert numbers["examples"] == 96 and numbers["iwae_samples"] == 20
    assert numbers["neg_elbo"] == pytest.approx(numbers["reconstruction"] + numbers["kl"])
    assert numbers["kl"] >= 0
    # log-likelihood of binary data: positive nats, at most 12 * log 2 is a fair ceiling here
    assert 0 < numbers["nll"] < 12 * np.log(2) * 2
    assert numbers["nll"] < numbers["neg_elbo"] + 0.5  # IWAE is a tighter bound than the ELBO
    model = genlatent.load(run_dir / "model")
    x = genlatent.H5Dataset(data_dir / "vec.h5").read(slice(None))["x"]
    with torch.no_grad():
        means = model.encode_mean(x).numpy()
    assert numbers["active_units"] == int((means.var(axis=0) > 0.01).sum())
    text = invoke("evaluate", run_dir, data_dir / "vec.h5", "--iwae-samples", "2").stdout
    assert "nll" in text and "active_units" in text and "of 3" in text


def test_evaluate_rejects_data_of_another_shape(run_dir, data_dir) -> None:
    result = invoke("evaluate", run_dir, data_dir / "img.h5", ok=False)
    assert_user_error(result, "img.h5", "trained on vectors data of shape [12]")
    result = invoke("evaluate", data_dir, data_dir / "vec.h5", ok=False)
    assert_user_error(result, "not a genlatent run folder")


# --------------------------------------------------------------------------- encode / decode


def test_encode_writes_means_scales_and_labels(run_dir, data_dir, tmp_path) -> None:
    out = tmp_path / "latents.h5"
    result = invoke("encode", run_dir, data_dir / "vec.h5", "--out", out)
    assert "mean (96, 3)" in result.stdout
    got = read_h5(out)
    source = read_h5(data_dir / "vec.h5")
    assert got["mean"].shape == (96, 3) and got["scale"].shape == (96, 3)
    assert (got["scale"] > 0).all()
    assert sorted(got["index"]) == list(range(96))
    np.testing.assert_array_equal(got["y"], source["y"][got["index"]])
    with h5py.File(out) as f:
        assert json.loads(f["y"].attrs["label_names"]) == ["a", "b", "c"]
    model = genlatent.load(run_dir / "model")
    with torch.no_grad():
        expected = model.encode_mean(torch.from_numpy(source["x"][got["index"]])).numpy()
    np.testing.assert_allclose(got["mean"], expected, rtol=1e-5, atol=1e-6)
    # decode the means back: the decoder's Bernoulli means at those codes, labels carried
    decoded = tmp_path / "decoded.h5"
    invoke("decode", run_dir, out, "--out", decoded)
    back = read_h5(decoded)
    assert back["x"].shape == (96, 12) and ((back["x"] >= 0) & (back["x"] <= 1)).all()
    with torch.no_grad():
        direct = model.generate_from(torch.from_numpy(got["mean"])).numpy()
    np.testing.assert_allclose(back["x"], direct, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(back["y"], got["y"])


def test_decode_rejects_codes_of_the_wrong_size_and_leaves_no_file(run_dir, tmp_path):
    codes = tmp_path / "codes.h5"
    with h5py.File(codes, "w") as f:
        f["z"] = np.zeros((4, 5), dtype=np.float32)
    result = invoke("decode", run_dir, codes, "--out", tmp_path / "out.h5", ok=False)
    assert_user_error(result, "codes.h5:z", "(N, 3)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["codes.h5"]


def test_reconstruct_first_rows(run_dir, data_dir, tmp_path) -> None:
    out = tmp_path / "recon.h5"
    invoke("reconstruct", run_dir, data_dir / "vec.h5", "-n", "5", "--out", out)
    got = read_h5(out)
    assert got["x"].shape == (5, 12) and got["z"].shape == (5, 3)
    np.testing.assert_array_equal(got["index"], np.arange(5))
    assert genlatent.H5Dataset(out).spec.shape == (12,)  # readable as a dataset again


def test_sample_is_seeded_and_shaped(run_dir, tmp_path) -> None:
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    invoke("sample", run_dir, "-n", "7", "--out", a, "--seed", "3")
    invoke("sample", run_dir, "-n", "7", "--out", b, "--seed", "3")
    got, again = read_h5(a), read_h5(b)
    assert got["x"].shape == (7, 12) and got["z"].shape == (7, 3)
    np.testing.assert_array_equal(got["x"], again["x"])
    result = invoke("sample", run_dir, "-n", "0", "--out", a, ok=False)
    assert result.exit_code == 2


def test_interpolate_paths_start_and_end_at_the_codes(run_dir, data_dir, tmp_path) -> None:
    out = tmp_path / "interp.h5"
    invoke("interpolate", run_dir, data_dir / "vec.h5", "--pair", "0", "5", "--pair", "2", "3",
           "--steps", "4", "--out", out)
    got = read_h5(out)
    assert got["x"].shape == (8, 12) and got["z"].shape == (8, 3)
    np.testing.assert_array_equal(got["pair"], [0, 0, 0, 0, 1, 1, 1, 1])
    np.testing.assert_allclose(got["t"][:4], [0, 1 / 3, 2 / 3, 1], atol=1e-6)
    model = genlatent.load(run_dir / "model")
    x = genlatent.H5Dataset(data_dir / "vec.h5").read([0, 5])["x"]
    with torch.no_grad():
        ends = model.encode_mean(x).numpy()
    np.testing.assert_allclose(got["z"][[0, 3]], ends, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["z"][1], ends[0] + (ends[1] - ends[0]) / 3, atol=1e-5)
    result = invoke("interpolate", run_dir, data_dir / "vec.h5", "--pair", "0", "500",
                    "--out", out, ok=False)
    assert_user_error(result, "row 500")


# --------------------------------------------------------------------------- tokens


def test_token_samples_are_decoded_to_strings(token_model, tmp_path) -> None:
    from genlatent.data import Vocabulary

    folder, h5 = token_model
    out = tmp_path / "smiles.h5"
    result = invoke("sample", folder, "-n", "6", "--temperature", "0.8", "--out", out)
    got = read_h5(out)
    model = genlatent.load(folder)
    vocab = Vocabulary(list(model.data.vocab))
    strings = [s.decode() for s in got["strings"]]
    assert got["strings"].dtype.kind == "S" and len(strings) == 6
    assert strings == [vocab.decode(row) for row in got["x"]]
    assert (got["lengths"] >= 1).all() and got["z"].shape == (6, 2)
    assert strings[0] in result.stdout  # the first strings are printed
    recon = tmp_path / "recon.h5"
    invoke("reconstruct", folder, h5, "-n", "4", "--out", recon)
    rec = read_h5(recon)
    assert rec["strings"].shape == (4,) and rec["mw"].shape == (4,)


# --------------------------------------------------------------------------- plots


def test_plot_images_and_tables_are_real_pngs(image_model, token_model, data_dir, tmp_path):
    out = tmp_path / "img"
    result = invoke("plot", image_model, data_dir / "img.h5", "--out", out, "--samples", "8")
    names = sorted(Path(p).name for p in result.stdout.split())
    assert names == ["interpolations.png", "latent.png", "reconstructions.png", "samples.png"]
    for name in names:
        assert_png(out / name)
    folder, h5 = token_model
    out = tmp_path / "tok"
    invoke("plot", folder, h5, "--out", out, "--samples", "4")
    assert_png(out / "reconstructions.png")
    assert_png(out / "samples.png")


def test_plot_without_matplotlib_says_what_to_install(run_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = invoke("plot", run_dir, "--out", tmp_path / "p", ok=False)
    assert_user_error(result, "pip install 'genlatent[plot]'")
    assert not (tmp_path / "p").exists()


# --------------------------------------------------------------------------- data, info


def test_data_import_npz_and_idx(tmp_path) -> None:
    import gzip
    import struct

    np.savez(tmp_path / "a.npz", x=np.arange(40, dtype=np.float32).reshape(10, 4),
             t=np.arange(10.0))
    result = invoke("data", "import", "npz", tmp_path / "a.npz", "--out", tmp_path / "a.h5",
                    "--no-shuffle")
    assert "10 examples of vectors [4]" in result.stdout and "labels: t" in result.stdout
    got = read_h5(tmp_path / "a.h5")
    np.testing.assert_array_equal(got["x"], np.arange(40).reshape(10, 4))
    images = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    with gzip.open(tmp_path / "img.gz", "wb") as f:
        f.write(struct.pack(">BBBB", 0, 0, 8, 3) + struct.pack(">III", 3, 4, 5) + images.tobytes())
    with gzip.open(tmp_path / "lab.gz", "wb") as f:
        f.write(struct.pack(">BBBB", 0, 0, 8, 1) + struct.pack(">I", 3) + bytes([2, 0, 1]))
    result = invoke("data", "import", "idx", tmp_path / "img.gz", "--labels", tmp_path / "lab.gz",
                    "--label-names", "u,v,w", "--out", tmp_path / "i.h5", "--no-shuffle")
    assert "3 examples of grids [1, 4, 5]" in result.stdout
    got = read_h5(tmp_path / "i.h5")
    np.testing.assert_array_equal(got["x"][:, 0], images)
    np.testing.assert_array_equal(got["y"], [2, 0, 1])
    info = json.loads(invoke("data", "info", tmp_path / "i.h5", "--json").stdout)
    assert info["label_categories"]["y"] == ["u", "v", "w"]
    result = invoke("data", "import", "npy", tmp_path / "nope.npy", "--out", tmp_path / "n.h5",
                    ok=False)
    assert_user_error(result, "nope.npy")


def test_data_import_smiles_with_a_training_vocabulary(token_model, data_dir, tmp_path):
    _, train = token_model
    (tmp_path / "test.csv").write_text("smiles\nCCO\nCCS\n")
    result = invoke("data", "import", "smiles", tmp_path / "test.csv", "--vocab-from", train,
                    "--out", tmp_path / "t.h5", ok=False)
    assert_user_error(result, "unknown token 'S'")
    invoke("data", "import", "smiles", tmp_path / "test.csv", "--vocab-from", train,
           "--allow-unknown", "--out", tmp_path / "t.h5")
    test = genlatent.H5Dataset(tmp_path / "t.h5")
    assert test.spec.vocab == genlatent.H5Dataset(train).spec.vocab


def test_info_on_files_and_runs(run_dir, data_dir) -> None:
    text = invoke("info", data_dir / "vec.h5").stdout
    assert "x  " in text and "(96, 12)" in text and "label_names" in text
    text = invoke("info", run_dir).stdout
    assert "latent_dim 3" in text and "encoder:" in text and "2 epochs" in text
    summary = json.loads(invoke("info", run_dir, "--json").stdout)
    assert summary["spec"]["latent_dim"] == 3 and summary["metrics"]["epochs"] == 2
    assert summary["config"]["data"]["key"] == "x"
    assert_user_error(invoke("info", data_dir / "nothing.h5", ok=False), "nothing.h5")
    (data_dir / "junk.h5").write_text("not hdf5")
    assert_user_error(invoke("info", data_dir / "junk.h5", ok=False), "junk.h5")


# --------------------------------------------------------------------------- subprocesses


def _genlatent(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "genlatent.cli.main", *map(str, args)],
                          capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)


def test_subprocess_results_on_stdout_progress_on_stderr(run_dir, data_dir, tmp_path) -> None:
    done = _genlatent("evaluate", run_dir, data_dir / "vec.h5", "--iwae-samples", "2", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["examples"] == 96
    assert "evaluating on 96 examples" in done.stderr
    done = _genlatent("sample", run_dir, "-n", "3", "--out", tmp_path / "s.h5")
    assert done.returncode == 0 and read_h5(tmp_path / "s.h5")["x"].shape == (3, 12)


def test_subprocess_errors_exit_2_with_one_line(data_dir, tmp_path) -> None:
    done = _genlatent("train", data_dir / "vec.h5", "--encoder", "mpl", "--out", tmp_path / "r")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        done.stderr.strip().splitlines()[-1]
    ] and done.stderr.startswith("Error: unknown encoder 'mpl'; did you mean 'mlp'?")
    assert not (tmp_path / "r").exists()
    done = _genlatent("info", tmp_path / "missing.h5")
    assert done.returncode == 2 and done.stderr.startswith("Error: ")
    assert "Traceback" not in done.stderr


def test_autoencoder_cannot_sample_but_evaluates(data_dir, tmp_path) -> None:
    folder = tmp_path / "ae"
    genlatent.build({"model": "ae", "latent_dim": 2,
                     "data": {"kind": "vectors", "shape": [12]}}).save(folder)
    assert_user_error(invoke("sample", folder, "-n", "2", "--out", tmp_path / "s.h5", ok=False),
                      "no prior")
    numbers = json.loads(invoke("evaluate", folder, data_dir / "vec.h5", "--json").stdout)
    assert "kl" not in numbers and numbers["reconstruction"] > 0
