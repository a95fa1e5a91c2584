"""The latent-space report: its numbers against closed forms, the command end to end, and the
page in a real headless browser (skipped when Chromium or selenium is absent)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import genlatent
from genlatent.analysis import inference
from genlatent.analysis import latent_report as lr
from genlatent.analysis.html_report import render_html, write_report
from genlatent.cli.main import cli
from genlatent.data import write_h5
from genlatent.errors import GenlatentError


def invoke(*args, ok: bool = True):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, f"exit {result.exit_code}: {result.stderr}"
    return result


# --------------------------------------------------------------------------- closed forms


def test_pca_error_is_zero_on_rank_k_data_and_the_dropped_power_otherwise() -> None:
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(12, 12)))[0][:, :3]
    scales = np.array([5.0, 2.0, 0.5])
    codes = rng.normal(size=(300, 3))
    codes = (codes - codes.mean(0)) / codes.std(0)  # unit variance, uncorrelated enough
    x = (codes * scales) @ basis.T + 7.0  # exactly rank 3 around an offset
    exact = lr.pca_error(x, 3)
    assert exact["squared_error"] == pytest.approx(0.0, abs=1e-9)
    assert exact["total_variance"] == pytest.approx(((x - x.mean(0)) ** 2).sum(1).mean())
    s = np.linalg.svd(x - x.mean(0), compute_uv=False)
    assert lr.pca_error(x, 2)["squared_error"] == pytest.approx(s[2] ** 2 / 300)
    assert lr.pca_error(x, 0)["squared_error"] == pytest.approx(exact["total_variance"])
    assert lr.squared_error(x, x + 0.5) == pytest.approx(12 * 0.25)
    # fitted on other rows of the same subspace: still exact; on the rows themselves: in-sample
    assert lr.pca_fit_error(x[:100], x[100:], 3) == pytest.approx(0.0, abs=1e-9)
    assert lr.pca_fit_error(x, x, 2) == pytest.approx(lr.pca_error(x, 2)["squared_error"])
    noisy = x + 0.1 * rng.normal(size=x.shape)
    assert lr.pca_fit_error(noisy[:150], noisy[150:], 3) > lr.pca_error(noisy[150:], 3)[
        "squared_error"
    ]


def test_trustworthiness_is_one_for_isometries_and_half_for_random_codes() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(150, 6))
    rotation = np.linalg.qr(rng.normal(size=(6, 6)))[0]
    assert lr.trustworthiness(x, x, 5) == 1.0
    assert lr.trustworthiness(x, 3.0 * x @ rotation + 1.0, 10) == pytest.approx(1.0)
    assert lr.continuity(x, x @ rotation, 10) == pytest.approx(1.0)
    scores = [lr.trustworthiness(x, rng.normal(size=(150, 2)), 10) for _ in range(5)]
    assert np.mean(scores) == pytest.approx(0.5, abs=0.03)
    both = lr.neighbourhood_scores(x, x[:, :2], (5, 10))
    assert both["trustworthiness"]["10"] == pytest.approx(lr.trustworthiness(x, x[:, :2], 10))
    assert both["continuity"]["5"] == pytest.approx(lr.continuity(x, x[:, :2], 5))
    # a projection keeps latent neighbours honest less than it keeps data neighbours together
    assert both["continuity"]["10"] < 1.0 and both["trustworthiness"]["10"] < 1.0
    with pytest.raises(GenlatentError, match="below half"):
        lr.trustworthiness(x[:10], x[:10], 5)


def test_trustworthiness_matches_scikit_learn() -> None:
    manifold = pytest.importorskip("sklearn.manifold")
    rng = np.random.default_rng(2)
    x = rng.normal(size=(120, 8))
    z = x[:, :2] + 0.3 * rng.normal(size=(120, 2))
    for k in (3, 7, 15):
        assert lr.trustworthiness(x, z, k) == pytest.approx(
            manifold.trustworthiness(x, z, n_neighbors=k), abs=1e-12
        )
        assert lr.continuity(x, z, k) == pytest.approx(
            manifold.trustworthiness(z, x, n_neighbors=k), abs=1e-12
        )


def test_gaussian_kl_against_closed_forms() -> None:
    mean, var = np.array([0.5, -1.0, 0.0]), np.array([2.0, 0.5, 1.0])
    diagonal = 0.5 * (var + mean**2 - 1.0 - np.log(var)).sum()
    assert lr.gaussian_kl(mean, np.diag(var), np.zeros(3), np.eye(3)) == pytest.approx(diagonal)
    assert lr.gaussian_kl(mean, np.diag(var), mean, np.diag(var)) == pytest.approx(0.0, abs=1e-12)
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(3, 3)), rng.normal(size=(3, 3))
    cov_q, cov_p = a @ a.T + np.eye(3), b @ b.T + np.eye(3)
    mu_q, mu_p = rng.normal(size=3), rng.normal(size=3)
    mvn = torch.distributions.MultivariateNormal
    expected = torch.distributions.kl_divergence(
        mvn(torch.tensor(mu_q), torch.tensor(cov_q)), mvn(torch.tensor(mu_p), torch.tensor(cov_p))
    ).item()
    assert lr.gaussian_kl(mu_q, cov_q, mu_p, cov_p) == pytest.approx(expected, rel=1e-10)


def test_aggregate_moments_follow_the_law_of_total_covariance() -> None:
    means = np.array([[1.0, 0.0], [-1.0, 0.0]])
    scales = np.array([[1.0, 2.0], [1.0, 2.0]])
    mean, cov = lr.aggregate_moments(means, scales)
    np.testing.assert_allclose(mean, [0.0, 0.0])
    np.testing.assert_allclose(cov, [[2.0, 0.0], [0.0, 4.0]])


def test_mmd_is_unbiased_and_sees_a_shift() -> None:
    a = np.array([[0.0], [1.0]])
    b = np.array([[0.0], [3.0]])
    k = lambda u, v: np.exp(-((u - v) ** 2) / 2.0)  # noqa: E731 - bandwidth 1
    expected = 2 * k(0, 1) / 2 + 2 * k(0, 3) / 2 - 2 * (k(0, 0) + k(0, 3) + k(1, 0) + k(1, 3)) / 4
    value, bandwidth = lr.mmd2(a, b, bandwidth=1.0)
    assert value == pytest.approx(expected) and bandwidth == 1.0
    rng = np.random.default_rng(4)
    same = [lr.mmd2(rng.normal(size=(200, 2)), rng.normal(size=(200, 2)))[0] for _ in range(5)]
    shifted = lr.mmd2(rng.normal(size=(200, 2)), rng.normal(size=(200, 2)) + 1.0)[0]
    assert abs(np.mean(same)) < 0.01 < shifted


def test_nearest_distances() -> None:
    points = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]])
    np.testing.assert_allclose(lr.nearest_distances(points, points, exclude_self=True),
                               [1.0, np.sqrt(18.0), 1.0])
    np.testing.assert_allclose(lr.nearest_distances(np.array([[3.0, 0.0]]), points), [3.0])


def test_overfitting_gap_per_epoch() -> None:
    rows = [
        {"epoch": 1, "train_neg_elbo": 10.0, "val_neg_elbo": 9.0, "train_loss": 10.0},
        {"epoch": 2, "train_neg_elbo": 8.0, "val_neg_elbo": 8.5},
        {"epoch": 3, "train_neg_elbo": 7.0, "val_neg_elbo": 8.75},
    ]
    fit = lr.overfitting(rows)
    assert fit["metric"] == "neg_elbo" and fit["epochs"] == [1, 2, 3]
    assert fit["gap"] == [-1.0, 0.5, 1.75] and fit["last_gap"] == 1.75
    assert fit["best_val_epoch"] == 2 and fit["val_rise_since_best"] == 0.25
    assert lr.overfitting([{"epoch": 1, "train_loss": 3.0, "val_loss": 4.0}])["metric"] == "loss"
    assert lr.overfitting([{"epoch": 1, "train_loss": 3.0}]) is None


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 120)
    x = (rng.random((120, 12)) < (0.15 + 0.3 * y[:, None])).astype(np.float32)
    write_h5(folder / "vec.h5", x, labels={"y": y}, attrs={"kind": "vectors"})
    write_h5(folder / "train.h5", x[::-1][:60], attrs={"kind": "vectors"})
    return folder


@pytest.fixture(scope="module")
def run_dir(data_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "vec"
    invoke("train", data_dir / "vec.h5", "--encoder", "mlp", "--decoder", "mlp",
           "--set", "encoder.hidden=[16]", "--set", "decoder.hidden=[16]", "--latent-dim", 3,
           "--epochs", 3, "--batch-size", 32, "--seed", 1, "--set", "train.lr=0.01",
           "--out", out)
    return out


@pytest.fixture(scope="module")
def report_dir(run_dir, data_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "rep"
    result = invoke("report", run_dir, data_dir / "vec.h5", "--out", out, "--prior-samples",
                    200, "--neighbours", "5,10", "--pca-fit", data_dir / "train.h5")
    assert result.stdout.split() == [str(out / "report.html"), str(out / "report.json")]
    assert "continuity" in result.stderr  # progress goes to stderr
    return out


def test_report_numbers_agree_with_the_model(report_dir, run_dir, data_dir) -> None:
    numbers = json.loads((report_dir / "report.json").read_text())
    data = genlatent.H5Dataset(data_dir / "vec.h5")
    model = genlatent.load(run_dir / "model")
    x = data.read(slice(None))["x"]
    with torch.no_grad():
        means = model.encode_mean(x)
        recon = model.generate_from(means).numpy()
        kl = float(model.elbo(x)["kl"].double().mean())
    assert numbers["data"]["examined"] == 120
    comp = numbers["compression"]
    assert comp["model"] == pytest.approx(lr.squared_error(x.numpy(), recon), rel=1e-5)
    assert comp["pca_in_sample"] == pytest.approx(
        lr.pca_error(x.numpy(), 3)["squared_error"], rel=1e-9)
    train = genlatent.H5Dataset(data_dir / "train.h5").read(slice(None))["x"].numpy()
    assert comp["pca"] == pytest.approx(lr.pca_fit_error(train, x.numpy(), 3), rel=1e-9)
    assert comp["pca"] > comp["pca_in_sample"] and "60 rows of" in comp["pca_fit"]
    assert comp["model_better_by"] == pytest.approx(1 - comp["model"] / comp["pca"])
    assert numbers["fit"]["kl"] == pytest.approx(kl, rel=1e-4)  # analytic: deterministic
    assert numbers["active_units"]["count"] == inference.active_units(means.numpy())
    cont = numbers["continuity"]
    assert cont["k"] == [5, 10]
    assert cont["trustworthiness"]["5"] == pytest.approx(
        lr.trustworthiness(x.numpy(), means.numpy(), 5), abs=1e-9)
    agg = numbers["completeness"]["aggregate_posterior"]
    assert agg["prior_moments"] == "exact" and agg["gaussian_kl_to_prior"] >= 0
    trip = numbers["completeness"]["round_trip"]
    assert trip["ratio"] == pytest.approx(
        trip["median_distance_prior"] / trip["median_distance_data"])
    over = numbers["overfitting"]
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert over["epochs"] == [1, 2, 3]
    assert over["gap"][-1] == pytest.approx(rows[-1]["val_neg_elbo"] - rows[-1]["train_neg_elbo"])


def test_report_page_embeds_every_picture(report_dir) -> None:
    page = (report_dir / "report.html").read_text()
    images = re.findall(r'<img src="([^"]+)"', page)
    assert len(images) == 7  # latent, reconstructions, samples, interpolations, curves, 2 own
    assert all(src.startswith("data:image/png;base64,") for src in images)
    assert "<script" not in page and "http" not in page  # nothing fetched, nothing run
    for title in ("Compression", "Continuity", "Completeness", "Overfitting", "Active units"):
        assert title in page
    assert "in sample" in page  # both PCA fits are shown


def test_report_for_an_autoencoder_skips_what_needs_a_prior(data_dir, tmp_path) -> None:
    data = genlatent.H5Dataset(data_dir / "vec.h5", labels="y")
    model = genlatent.build({"model": "ae", "latent_dim": 2, "data": data.spec.to_dict()},
                            seed=0)
    model.save(tmp_path / "ae")
    written = write_report(tmp_path / "ae", data, tmp_path / "rep", neighbours=(5,))
    numbers = json.loads(written["json"].read_text())
    assert "no prior" in numbers["completeness"]["skipped"]
    assert numbers["overfitting"] is None and "kl" not in numbers["fit"]
    page = written["html"].read_text()
    assert "Skipped: model &#x27;ae&#x27; has no prior" in page
    assert page.count("<img") == 4  # latent, reconstructions, interpolations, active units


def test_token_report_skips_compression_and_scores_molecules(tmp_path, monkeypatch) -> None:
    import sys
    import types

    import genlatent.analysis
    from genlatent.data.importers import import_smiles

    (tmp_path / "m.csv").write_text(
        "smiles\n" + "\n".join(["CCO", "c1ccccc1", "CC(=O)O", "CCN", "OCC(Cl)Br", "CCCC"] * 4)
    )
    import_smiles(tmp_path / "m.csv", tmp_path / "m.h5")
    data = genlatent.H5Dataset(tmp_path / "m.h5")
    model = genlatent.build(
        {"latent_dim": 2, "data": data.spec.to_dict(),
         "encoder": {"name": "gru", "params": {"hidden_size": 8, "embedding_dim": 4}},
         "decoder": {"name": "gru", "params": {"hidden_size": 8, "embedding_dim": 4}}},
        seed=0,
    ).eval()
    seen = []

    def molecule_metrics(strings):
        seen.append(list(strings))
        return {"samples": len(strings), "validity": 0.25, "note": "fake", "flag": True}

    fake = types.SimpleNamespace(molecule_metrics=molecule_metrics)
    monkeypatch.setitem(sys.modules, "genlatent.analysis.molecules", fake)
    monkeypatch.setattr(genlatent.analysis, "molecules", fake, raising=False)
    numbers = lr.latent_report(model, data, neighbours=(3, 5), prior_samples=10)
    assert "token data" in numbers["compression"]["skipped"]
    assert set(numbers["continuity"]["trustworthiness"]) == {"3", "5"}
    assert numbers["completeness"]["molecules"] == {"samples": 10, "validity": 0.25,
                                                    "note": "fake"}
    assert len(seen) == 1 and len(seen[0]) == 10 and all(isinstance(s, str) for s in seen[0])


def test_report_rejects_bad_input_without_writing(run_dir, data_dir, tmp_path) -> None:
    write_h5(tmp_path / "other.h5", np.zeros((20, 5), np.float32), attrs={"kind": "vectors"})
    result = invoke("report", run_dir, tmp_path / "other.h5", "--out", tmp_path / "r", ok=False)
    assert result.exit_code == 2 and "shape [5]" in result.stderr
    assert not (tmp_path / "r").exists()
    result = invoke("report", run_dir, tmp_path / "other.h5", "--neighbours", "0", ok=False)
    assert result.exit_code == 2 and "--neighbours" in result.stderr
    result = invoke("report", run_dir, data_dir / "vec.h5", "--pca-fit", tmp_path / "other.h5",
                    "--out", tmp_path / "r", ok=False)
    assert result.exit_code == 2 and "other.h5" in result.stderr and "shape [5]" in result.stderr
    assert "encoding" not in result.stderr and not (tmp_path / "r").exists()
    result = invoke("report", run_dir, data_dir / "vec.h5", "--color-by", "nope", "--out",
                    tmp_path / "r", ok=False)
    assert result.exit_code == 2 and "no label 'nope'" in result.stderr
    assert "encoding" not in result.stderr  # refused before any work
    assert not (tmp_path / "r").exists()


def test_render_html_escapes_names() -> None:
    numbers = {"run": "<b>run</b>", "seed": 0, "data": {"path": "a&b.h5", "key": "x", "rows": 4,
               "examined": 4, "kind": "vectors", "shape": [2]},
               "model": {"model": "ae", "latent_dim": 1}, "active_units":
               {"count": 1, "of": 1, "threshold": 0.01}, "compression": {"skipped": "x"}}
    page = render_html(numbers, {})
    assert "<b>run</b>" not in page and "&lt;b&gt;run&lt;/b&gt;" in page and "a&amp;b.h5" in page


# --------------------------------------------------------------------------- the browser


def _chrome():
    webdriver = pytest.importorskip("selenium.webdriver")
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        pytest.skip("chromium and chromedriver are not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1200,900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=driver_path)
    return webdriver.Chrome(options=options, service=service)


def test_report_page_in_a_headless_browser(report_dir) -> None:
    browser = _chrome()
    try:
        browser.get((report_dir / "report.html").resolve().as_uri())
        assert "Latent-space report" in browser.title + browser.find_element("tag name", "h1").text
        sizes = browser.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth]);")
        assert len(sizes) == 7
        assert all(done and width > 0 for done, width in sizes), sizes
        errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == []
        # the check can fail: a broken picture is seen as such
        browser.execute_script(
            "document.images[0].src = 'data:image/png;base64,AAAA'; console.error('seen');")
        browser.implicitly_wait(0.5)
        width = browser.execute_script(
            "const i = document.images[0]; return i.complete ? i.naturalWidth : -1;")
        assert width in (0, -1)
        assert any("seen" in e["message"] for e in browser.get_log("browser"))
    finally:
        browser.quit()
