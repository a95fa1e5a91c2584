"""genlatent.analysis without the CLI: PCA, active units, interpolation paths, metric curves,
pictures of every data kind, and the AE's reduced evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import genlatent
from genlatent.analysis import inference, plots
from genlatent.analysis.runs import metrics_summary, read_metrics
from genlatent.data import DataSpec
from genlatent.errors import GenlatentError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read_png(path):
    import matplotlib.image as mpimg

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    return mpimg.imread(path)


def test_project_2d_is_the_leading_principal_components() -> None:
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(5, 5)))[0]
    z = (rng.normal(size=(400, 5)) * [5.0, 2.0, 0.1, 0.1, 0.1]) @ basis.T + 3.0
    points, (xlabel, ylabel) = plots.project_2d(z)
    # the projection's variances are the two largest eigenvalues of the covariance
    top = np.sort(np.linalg.eigvalsh(np.cov(z.T, bias=True)))[::-1][:2]
    np.testing.assert_allclose(points.var(axis=0), top, rtol=1e-8)
    np.testing.assert_allclose(points.mean(axis=0), 0.0, atol=1e-9)
    assert top[0] > 20 and top[1] > 3  # the big directions were found
    assert xlabel.startswith("PC1 (") and "%" in ylabel
    same, labels = plots.project_2d(z[:, :2])
    np.testing.assert_array_equal(same, z[:, :2])
    assert labels == ("z1", "z2")
    line, _ = plots.project_2d(z[:, :1])
    assert line.shape == (400, 2) and (line[:, 1] == 0).all()


def test_active_units_counts_dimensions_whose_means_vary() -> None:
    rng = np.random.default_rng(1)
    means = np.concatenate([rng.normal(0, 1.0, (1000, 3)), rng.normal(0, 0.05, (1000, 2))], 1)
    assert inference.active_units(means) == 3
    assert inference.active_units(means, threshold=1e-4) == 5
    assert inference.active_units(means[:1]) == 0


def test_interpolation_paths() -> None:
    za, zb = np.array([[1.0, 0.0], [0.0, 2.0]]), np.array([[0.0, 1.0], [2.0, 0.0]])
    line = inference.interpolate_codes(za, zb, 5)
    np.testing.assert_allclose(line[:, 0], za)
    np.testing.assert_allclose(line[:, -1], zb)
    np.testing.assert_allclose(line[0, 2], [0.5, 0.5])
    arc = inference.interpolate_codes(za, zb, 5, "slerp")
    np.testing.assert_allclose(arc[:, 0], za, atol=1e-12)
    np.testing.assert_allclose(arc[:, -1], zb, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(arc[0], axis=1), 1.0)  # stays on the circle
    np.testing.assert_allclose(arc[0, 2], [np.sqrt(0.5), np.sqrt(0.5)])
    with pytest.raises(GenlatentError, match="--steps"):
        inference.interpolate_codes(za, zb, 1)


def test_curves_from_trainer_records_and_split_rows(tmp_path) -> None:
    rows = [
        {"epoch": 1, "step": 10, "train_loss": 5.0, "val_loss": 6.0, "train_kl_weight": 1.0,
         "lr": 0.001, "samples_per_s": 900.0, "kl_method": "analytic", "world_size": 1},
        {"epoch": 2, "step": 20, "train_loss": 4.0, "val_loss": 5.5, "train_kl_weight": 1.0,
         "lr": 0.001, "samples_per_s": 950.0, "kl_method": "analytic", "world_size": 1},
    ]
    xname, series = plots.curve_series(rows)
    assert xname == "epoch"
    assert set(series) == {"train_loss", "val_loss", "train_kl_weight"}
    assert series["val_loss"] == [(1.0, 6.0), (2.0, 5.5)]
    _, split = plots.curve_series([{"epoch": 1, "split": "val", "loss": 2.0}])
    assert split == {"val/loss": [(1.0, 2.0)]}
    image = read_png(plots.plot_training_curves(rows, tmp_path / "c.png"))
    assert image.shape[0] > 100
    (tmp_path / "metrics.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows) + '{"epoch": 3, "train_lo'
    )
    read = read_metrics(tmp_path)  # a torn last line (a crash mid-write) is skipped
    assert read == rows
    summary = metrics_summary(read)
    assert summary["epochs"] == 2 and summary["best"]["val_loss"] == 5.5


@pytest.mark.parametrize(
    ("spec", "examples"),
    [
        (DataSpec("grids", (1, 6, 6)), np.random.default_rng(0).random((3, 1, 6, 6))),
        (DataSpec("grids", (3, 5, 5)), np.random.default_rng(0).random((3, 3, 5, 5))),
        (DataSpec("grids", (1, 6, 6)),
         np.random.default_rng(0).choice([-1.0, 1.0], (3, 1, 6, 6))),  # a lattice
        (DataSpec("grids", (2, 30)), np.random.default_rng(0).normal(size=(3, 2, 30))),
        (DataSpec("vectors", (20,)), np.random.default_rng(0).random((3, 20))),
        (DataSpec("counts", (20,)), np.random.default_rng(0).poisson(3.0, (3, 20))),
        (DataSpec("tokens", (9,), vocab=("<pad>", "<bos>", "<eos>", "<unk>", "C", "O")),
         ["CCO", "OCC", "C"]),
    ],
    ids=["image", "rgb", "lattice", "signal", "vectors", "counts", "tokens"],
)
def test_draw_rows_for_every_data_kind(spec, examples, tmp_path) -> None:
    path = plots.draw_rows(spec, [("input", list(examples)), ("again", list(examples)[:2])],
                           tmp_path / "rows.png", "title")
    image = read_png(path)
    assert min(image.shape[:2]) > 100 and float(image.std()) > 0
    assert [p.name for p in tmp_path.iterdir()] == ["rows.png"]  # no temp files left


def test_latent_plot_checks_label_count(tmp_path) -> None:
    z = np.random.default_rng(0).normal(size=(50, 3))
    read_png(plots.plot_latent_space(z, tmp_path / "a.png", labels=np.arange(50) % 4,
                                     class_names=["w", "x", "y", "z"]))
    read_png(plots.plot_latent_space(z, tmp_path / "b.png", labels=np.linspace(0, 1, 50)))
    with pytest.raises(GenlatentError, match="49 labels for 50"):
        plots.plot_latent_space(z, tmp_path / "c.png", labels=np.arange(49))
    assert not (tmp_path / "c.png").exists()


def test_autoencoder_has_reconstruction_and_active_units_only(tmp_path) -> None:
    from genlatent.data import write_h5

    rng = np.random.default_rng(0)
    write_h5(tmp_path / "d.h5", rng.random((20, 6)).astype(np.float32),
             attrs={"kind": "vectors"})
    data = genlatent.H5Dataset(tmp_path / "d.h5")
    model = genlatent.build({"model": "ae", "latent_dim": 2, "data": data.spec.to_dict()})
    model.eval()
    result = inference.evaluate(model, data, iwae_samples=5, batch_size=8)
    assert set(result) == {"reconstruction", "examples", "latent_dim", "active_units", "model"}
    with torch.no_grad():
        x = data.read(slice(None))["x"]
        expected = model.reconstruction_nll(model.encode(x), x).mean().item()
    assert result["reconstruction"] == pytest.approx(expected, rel=1e-5)
    with pytest.raises(GenlatentError, match="no prior"):
        inference.sample_prior(model, 3)


def test_long_passes_report_rows_elapsed_and_eta_in_log_lines() -> None:
    """A pass over a dataset reports rows done with elapsed time and ETA: off a terminal one
    line per 30 s (fake clock), nothing for a pass under 2 s."""
    import io

    from genlatent.analysis.inference import RowProgress

    now = [0.0]
    out = io.StringIO()
    progress = RowProgress("data.h5:x", 1000, stream=out, clock=lambda: now[0])
    progress.update(10)  # 0 s: too early
    now[0] = 10.0
    progress.update(100)  # 10 s in, 100 rows: ETA 90 s
    now[0] = 20.0
    progress.update(200)  # within 30 s of the last line: quiet
    now[0] = 41.0
    progress.update(500)
    progress.close()
    lines = out.getvalue().splitlines()
    assert lines == [
        "data.h5:x: 100/1000 rows, 0:10 elapsed, ETA 1:30",
        "data.h5:x: 500/1000 rows, 0:41 elapsed, ETA 0:41",
    ]
