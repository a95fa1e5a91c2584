"""The standard pictures of a run, from its model, its metrics and (optionally) a dataset.

``make_plots`` is what ``genlatent plot`` and the end of ``genlatent train`` call::

    curves.png           training (and validation) curves per metric, from metrics.jsonl
    latent.png           posterior means (PCA when more than 2-D), coloured by a label
    reconstructions.png  inputs above their reconstructions
    samples.png          decoded draws from the prior (VAE)
    interpolations.png   decoded paths between the codes of pairs of examples
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import inference, plots
from .h5out import decode_tokens
from .runs import read_metrics, run_dir

PREFERRED_LABELS = ("y", "label", "labels", "class", "target", "category")
_NOT_LABELS = ("smiles", "strings", "index", "lengths", "pair", "t")


def choose_label(dataset: Any, name: str | None = None) -> str | None:
    """The label to colour the latent space by: ``name`` if given (it must exist), else a
    conventional name (``y``, ``label``...), else the first label with at most 20 values."""
    labels = getattr(dataset, "labels", {}) or {}
    if name is not None:
        if name not in labels:
            from ..errors import DataError

            known = ", ".join(labels) or "(none)"
            raise DataError(
                f"{dataset.path}: no label {name!r} aligned with the data; labels: {known}"
            )
        return name
    for candidate in PREFERRED_LABELS:
        if candidate in labels:
            return candidate
    usable = [k for k in labels if k not in _NOT_LABELS]
    for key in usable:
        if len(np.unique(labels[key])) <= 20:
            return key
    return usable[0] if usable else None


def label_names(dataset: Any, name: str) -> list[str] | None:
    """Class names of a label, as its reader found them (string categories, or the
    ``label_names`` attribute of an HDF5 label)."""
    categories = getattr(dataset, "label_categories", {}).get(name)
    return list(categories) if categories is not None else None


def _examples(model: Any, x: np.ndarray, lengths: np.ndarray | None = None) -> list[Any]:
    """Rows of data as drawable examples: arrays, or strings for token data."""
    if model.data.kind == "tokens":
        return decode_tokens(model.data, x)
    return list(np.asarray(x, dtype=np.float32))


def _as_numpy(out: Any) -> tuple[np.ndarray, np.ndarray | None]:
    if isinstance(out, tuple):
        return out[0].cpu().numpy(), out[1].cpu().numpy()
    return out.float().cpu().numpy(), None


def plot_curves(run: str | os.PathLike[str], out: Path) -> Path | None:
    """``curves.png``: training (and validation) curves per metric; None without metrics."""
    folder = run_dir(Path(run))
    rows = read_metrics(folder) if folder is not None else []
    if not rows:
        return None
    return plots.plot_training_curves(rows, out / "curves.png", title=f"training: {Path(run).name}")


def plot_latent(
    model: Any,
    dataset: Any,
    out: Path,
    *,
    label: str | None = None,
    max_points: int = 5000,
    batch_size: int = 256,
) -> Path:
    """``latent.png``: posterior means of the first ``max_points`` rows, coloured by a label
    (:func:`choose_label`)."""
    shown = dataset if len(dataset) <= max_points else dataset.subset(0, max_points)
    codes = inference.encode_dataset(model, shown, batch_size, model.device)
    chosen = choose_label(dataset, label)
    colours = names = None
    if chosen is not None:
        colours = np.asarray(dataset.labels[chosen])[codes["index"]]
        names = label_names(dataset, chosen)
    return plots.plot_latent_space(
        codes["mean"],
        out / "latent.png",
        labels=colours,
        label_name=chosen or "label",
        class_names=names,
        title=f"latent space of {len(codes['mean'])} examples (posterior means)",
    )


def plot_reconstructions(model: Any, dataset: Any, out: Path, *, examples: int = 8) -> Path:
    """``reconstructions.png``: the first ``examples`` rows above their reconstructions."""
    batch = dataset.read(np.arange(min(examples, len(dataset))))
    x = batch["x"].to(model.device)
    lengths = batch.get("lengths")
    lengths = lengths.to(model.device) if lengths is not None else None
    condition = batch.get("condition")
    cond = {} if condition is None else {"condition": condition.to(model.device)}
    with torch.no_grad():
        recon, _ = _as_numpy(model.reconstruct(x, lengths, **cond))
    inputs = _examples(model, x.cpu().numpy())
    return plots.draw_rows(
        model.data,
        [("input", inputs), ("reconstruction", _examples(model, recon))],
        out / "reconstructions.png",
        "inputs and their reconstructions",
    )


def plot_interpolations(
    model: Any,
    dataset: Any,
    out: Path,
    *,
    pairs: int = 4,
    steps: int = 8,
    seed: int = 0,
    batch_size: int = 256,
) -> Path:
    """``interpolations.png``: decoded straight paths between the codes of ``pairs`` random
    pairs of rows (drawn from ``seed``)."""
    ends = inference.random_pairs(len(dataset), pairs, seed)
    decoded = inference.interpolate_pairs(model, dataset, ends, steps, batch_size=batch_size)
    made = _examples(model, decoded["x"])
    rows_of = [
        (f"{int(a)}→{int(b)}", made[i * steps : (i + 1) * steps]) for i, (a, b) in enumerate(ends)
    ]
    return plots.draw_rows(
        model.data, rows_of, out / "interpolations.png",
        f"interpolations ({steps} steps between codes)",
    )


def plot_samples(
    model: Any, out: Path, *, samples: int = 32, batch_size: int = 256, condition: Any = None
) -> Path:
    """``samples.png``: data decoded from ``samples`` codes drawn from the prior (torch's RNG);
    a conditional model's at ``condition`` (``(samples, C)``, e.g. those of data rows)."""
    drawn = inference.sample_prior(model, samples, batch_size=batch_size, condition=condition)
    made = _examples(model, drawn["x"])
    if model.data.kind == "tokens":
        rows_of = [("sample", made)]
    else:
        rows_of = [(f"{i}", made[i : i + 8]) for i in range(0, len(made), 8)]
    return plots.draw_rows(
        model.data, rows_of, out / "samples.png",
        f"{samples} samples from the prior"
        + ("" if condition is None else " at the conditions of the first data rows"),
    )


def make_plots(
    run: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    model: Any,
    dataset: Any | None = None,
    *,
    label: str | None = None,
    examples: int = 8,
    samples: int = 32,
    pairs: int = 4,
    steps: int = 8,
    max_points: int = 5000,
    seed: int = 0,
    batch_size: int = 256,
) -> list[Path]:
    """Write the pictures listed in the module docstring into ``out_dir``; return their
    paths. Pictures that need data are skipped without ``dataset``; ``samples.png`` for a
    model without a prior (AE)."""
    out = Path(out_dir)
    written = [p for p in [plot_curves(run, out)] if p is not None]
    torch.manual_seed(seed)
    if dataset is not None:
        inference.check_compatible(model, dataset)
        written.append(
            plot_latent(
                model, dataset, out, label=label, max_points=max_points, batch_size=batch_size
            )
        )
        written.append(plot_reconstructions(model, dataset, out, examples=examples))
        if len(dataset) >= 2:
            written.append(
                plot_interpolations(
                    model, dataset, out, pairs=pairs, steps=steps, seed=seed, batch_size=batch_size
                )
            )
    conditional = bool(getattr(model, "condition_dim", 0))
    if getattr(model, "prior", None) is not None and samples > 0:
        condition = None
        if conditional and dataset is not None:  # at the conditions of the first rows
            rows = np.arange(samples) % len(dataset)
            condition = dataset.read(rows)["condition"]
        if not conditional or condition is not None:
            written.append(plot_samples(
                model, out, samples=samples, batch_size=batch_size, condition=condition
            ))
    return written
