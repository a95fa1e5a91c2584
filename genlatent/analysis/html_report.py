"""The latent-space report as one self-contained HTML page plus its numbers as JSON.

:func:`write_report` is what ``genlatent report RUN DATA --out DIR`` calls. ``DIR`` gets

    report.html   every number with a sentence saying what it means, and every picture
                  embedded as a PNG data URI: the page opens from disk, without a server,
                  scripts or anything fetched from the network
    report.json   the numbers of :func:`genlatent.analysis.latent_report.latent_report`

Both are written atomically. The pictures are the run's standard ones (curves, latent map
coloured by a label, reconstructions, samples, interpolations, from
:mod:`genlatent.analysis.report`) and two of the report's own (active units, the
train/validation gap).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..atomic import write_text
from . import plots
from .html_page import _PICTURES, HTML_FILE, JSON_FILE, render_html, summary_lines
from .latent_report import latent_report
from .report import choose_label
from .runs import load_run_model, read_metrics, run_dir

__all__ = ["HTML_FILE", "JSON_FILE", "render_html", "summary_lines", "write_report"]


def write_report(
    run: str | os.PathLike[str],
    data: str | os.PathLike[str] | Any,
    out_dir: str | os.PathLike[str],
    *,
    key: str | None = None,
    label: str | None = None,
    max_points: int = 2000,
    neighbours: Sequence[int] = (5, 10, 20),
    prior_samples: int = 1000,
    seed: int = 0,
    batch_size: int = 256,
    device: str = "cpu",
    pca_data: str | os.PathLike[str] | Any | None = None,
    model: Any | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Write ``report.html`` and ``report.json`` for the run (or model) folder ``run`` on
    ``data`` (a path, or an opened dataset) into ``out_dir``; return
    ``{"html": Path, "json": Path, "report": the numbers}``. ``pca_data`` (a path or a
    dataset, typically the training data) is what PCA is fitted on besides ``data``."""
    from ..data import open_dataset

    say = progress or (lambda message: None)
    plots.pyplot()  # fail early, in one line, without matplotlib
    if model is None:
        model = load_run_model(run, device)
    dataset = data if hasattr(data, "read") else open_dataset(data, key, labels=True)
    choose_label(dataset, label)  # an unknown --color-by fails now, not after the numbers
    if pca_data is not None and not hasattr(pca_data, "read"):
        pca_data = open_dataset(pca_data, dataset.key)
    folder = run_dir(Path(run))
    rows = read_metrics(folder) if folder is not None else []
    numbers = latent_report(
        model,
        dataset,
        metrics=rows,
        pca_data=pca_data,
        max_points=max_points,
        neighbours=neighbours,
        prior_samples=prior_samples,
        seed=seed,
        batch_size=batch_size,
        progress=say,
    )
    numbers["run"] = str(run)
    numbers["genlatent_version"] = __version__
    say("drawing pictures")
    with tempfile.TemporaryDirectory(prefix="genlatent-report-") as tmp:
        pictures = _draw(
            run, Path(tmp), model, dataset, numbers, label, max_points, seed, batch_size
        )
        page = render_html(numbers, pictures)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out / JSON_FILE, out / HTML_FILE
    write_text(json_path, json.dumps(_finite(numbers), indent=2, sort_keys=True) + "\n")
    write_text(html_path, page)
    return {"html": html_path, "json": json_path, "report": numbers}


def _finite(value: Any) -> Any:
    """JSON has no inf / NaN: they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


# --------------------------------------------------------------------------- pictures


def _draw(
    run: Any,
    tmp: Path,
    model: Any,
    dataset: Any,
    numbers: dict[str, Any],
    label: str | None,
    max_points: int,
    seed: int,
    batch_size: int,
) -> dict[str, tuple[str, str, bytes]]:
    """``{file: (title, caption, png bytes)}`` for every picture that could be drawn: the
    run's standard pictures (:mod:`genlatent.analysis.report`, one function each) and the
    report's own."""
    from .report import make_plots

    made: dict[str, Path] = {}

    def keep(path: Path | None) -> None:
        if path is not None:
            made[path.name] = path

    for path in make_plots(run, tmp, model, dataset, label=label, max_points=max_points,
                           seed=seed, batch_size=batch_size):
        keep(path)
    own = [
        (
            "active_units.png",
            "Active units",
            "Variance across the data of each latent "
            "dimension's posterior mean; dimensions under the line carry no information.",
            _active_units_figure,
        ),
        (
            "overfitting.png",
            "Training vs validation",
            "Neg ELBO per epoch (nats per example) and the gap between them.",
            _overfitting_figure,
        ),
    ]
    for name, _title, _caption, draw in own:
        path = tmp / name
        if draw(numbers, path):
            keep(path)
    pictures: dict[str, tuple[str, str, bytes]] = {}
    for name, title, caption in _PICTURES:
        if name in made:
            pictures[name] = (title, caption, made[name].read_bytes())
    for name, title, caption, _ in own:
        if name in made:
            pictures[name] = (title, caption, made[name].read_bytes())
    return pictures


def _active_units_figure(numbers: dict[str, Any], path: Path) -> bool:
    units = numbers.get("active_units") or {}
    variance = units.get("variance_of_means")
    if not variance:
        return False
    plt = plots.pyplot()
    fig, ax = plt.subplots(figsize=(max(4.0, 0.25 * len(variance) + 2.0), 3.0))
    values = np.maximum(np.asarray(variance, np.float64), 1e-12)
    active = values > units["threshold"]
    ax.bar(np.arange(1, len(values) + 1), values, color=np.where(active, "C0", "C7"))
    ax.axhline(units["threshold"], color="C3", lw=1, ls="--", label="threshold")
    ax.set_yscale("log")
    ax.set_xlabel("latent dimension")
    ax.set_ylabel("variance of the mean")
    ax.set_title(f"{units['count']} of {units['of']} units active")
    ax.legend(fontsize=8)
    fig.tight_layout()
    plots.save_figure(fig, path)
    return True


def _overfitting_figure(numbers: dict[str, Any], path: Path) -> bool:
    fit = numbers.get("overfitting")
    if not fit:
        return False
    plt = plots.pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(8.4, 3.2))
    left.plot(fit["epochs"], fit["train"], "-o", ms=3, label="train")
    left.plot(fit["epochs"], fit["val"], "--o", ms=3, label="validation")
    left.set_title(fit["metric"])
    left.legend(fontsize=8)
    right.plot(fit["epochs"], fit["gap"], "-o", ms=3, color="C3")
    right.axhline(0.0, color="k", lw=0.8)
    right.set_title("validation - train")
    for ax in (left, right):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    plots.save_figure(fig, path)
    return True


# --------------------------------------------------------------------------- the page
