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
    """Class names of a label: string categories, or a ``label_names`` JSON attribute."""
    categories = getattr(dataset, "label_categories", {}).get(name)
    if categories is not None:
        return list(categories)
    try:
        import json

        from ..data import open_h5

        with open_h5(dataset.path) as f:
            raw = f[name].attrs.get("label_names")
        if raw is None:
            return None
        names = json.loads(raw if isinstance(raw, str) else raw.decode())
        return [str(n) for n in names] if isinstance(names, list) else None
    except Exception:  # noqa: BLE001 - class names are a nicety, never a failure
        return None


def _examples(model: Any, x: np.ndarray, lengths: np.ndarray | None = None) -> list[Any]:
    """Rows of data as drawable examples: arrays, or strings for token data."""
    if model.data.kind == "tokens":
        return decode_tokens(model.data, x)
    return list(np.asarray(x, dtype=np.float32))


def _as_numpy(out: Any) -> tuple[np.ndarray, np.ndarray | None]:
    if isinstance(out, tuple):
        return out[0].cpu().numpy(), out[1].cpu().numpy()
    return out.float().cpu().numpy(), None


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
    written: list[Path] = []
    folder = run_dir(Path(run))
    rows = read_metrics(folder) if folder is not None else []
    if rows:
        written.append(
            plots.plot_training_curves(
                rows, out / "curves.png", title=f"training: {Path(run).name}"
            )
        )
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    device = model.device
    data = model.data
    if dataset is not None:
        inference.check_compatible(model, dataset)
        shown = dataset if len(dataset) <= max_points else dataset.subset(0, max_points)
        codes = inference.encode_dataset(model, shown, batch_size, device)
        chosen = choose_label(dataset, label)
        colours = names = None
        if chosen is not None:
            colours = np.asarray(dataset.labels[chosen])[codes["index"]]
            names = label_names(dataset, chosen)
        written.append(
            plots.plot_latent_space(
                codes["mean"],
                out / "latent.png",
                labels=colours,
                label_name=chosen or "label",
                class_names=names,
                title=f"latent space of {len(codes['mean'])} examples (posterior means)",
            )
        )
        n = min(examples, len(dataset))
        batch = dataset.read(np.arange(n))
        x = batch["x"].to(device)
        lengths = batch.get("lengths")
        lengths = lengths.to(device) if lengths is not None else None
        with torch.no_grad():
            recon, _ = _as_numpy(model.reconstruct(x, lengths))
        inputs = _examples(model, x.cpu().numpy())
        written.append(
            plots.draw_rows(
                data,
                [("input", inputs), ("reconstruction", _examples(model, recon))],
                out / "reconstructions.png",
                "inputs and their reconstructions",
            )
        )
        if len(dataset) >= 2:
            ends = np.stack([rng.choice(len(dataset), 2, replace=False) for _ in range(pairs)])
            picked = np.unique(ends.ravel())
            batch = dataset.read(picked)
            bl = batch.get("lengths")
            with torch.no_grad():
                mean, _ = inference.posterior_moments(
                    model, batch["x"].to(device), bl.to(device) if bl is not None else None
                )
            mean = mean.float().cpu().numpy()
            where = {int(r): i for i, r in enumerate(picked)}
            za = mean[[where[int(a)] for a in ends[:, 0]]]
            zb = mean[[where[int(b)] for b in ends[:, 1]]]
            path = inference.interpolate_codes(za, zb, steps).reshape(-1, model.latent_dim)
            decoded = inference.decode_codes(model, path, batch_size=batch_size)
            made = _examples(model, decoded["x"])
            rows_of = [
                (f"{int(a)}→{int(b)}", made[i * steps : (i + 1) * steps])
                for i, (a, b) in enumerate(ends)
            ]
            written.append(
                plots.draw_rows(
                    data,
                    rows_of,
                    out / "interpolations.png",
                    f"interpolations ({steps} steps between codes)",
                )
            )
    if getattr(model, "prior", None) is not None and samples > 0:
        drawn = inference.sample_prior(model, samples, batch_size=batch_size)
        made = _examples(model, drawn["x"])
        per_row = 8 if data.kind != "tokens" else samples
        rows_of = [(f"{i}", made[i : i + per_row]) for i in range(0, len(made), per_row)]
        if data.kind == "tokens":
            rows_of = [("sample", made)]
        written.append(
            plots.draw_rows(data, rows_of, out / "samples.png", f"{samples} samples from the prior")
        )
    return written
