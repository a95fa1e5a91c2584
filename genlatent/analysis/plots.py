"""Pictures of a run: training curves, latent space, reconstructions, samples, interpolations.

Each function takes plain arrays (or strings for token data) and writes one PNG atomically.
matplotlib (the ``plot`` extra) is imported on first use with the Agg backend, so the rest of
genlatent works without it. Examples are drawn by data kind (see :func:`draw_rows`): images as
images, lattices as grids, 1-D signals and vectors as lines, token sequences as text tables.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path
from ..dataspec import DataSpec
from ..errors import GenlatentError

# Metric keys that are axes or bookkeeping, not curves.
_NOT_CURVES = {
    "epoch",
    "step",
    "time",
    "elapsed",
    "wall_time",
    "seconds",
    "lr",
    "timestamp",
    "world_size",
    "kl_analytic",
    "partial_epoch",
}
_NOT_CURVE_PARTS = ("per_s", "time", "seconds", "memory")
_FIRST_PANELS = ("loss", "neg_elbo", "reconstruction", "kl", "nll")


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend, or a one-line error naming the extra."""
    try:
        import matplotlib
    except ImportError:
        raise GenlatentError(
            "plotting needs matplotlib; install it with: pip install 'genlatent[plot]'"
        ) from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | os.PathLike[str], dpi: int = 100) -> Path:
    """Write ``fig`` as a PNG atomically and close it."""
    plt = pyplot()
    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return Path(path)


# --------------------------------------------------------------------------- curves


def curve_series(
    rows: Sequence[Mapping[str, Any]],
) -> tuple[str, dict[str, list[tuple[float, float]]]]:
    """From metrics rows (``metrics.jsonl``), the x axis name and ``{metric: [(x, value)]}``.

    Rows may hold ``split`` (``train``/``val``) or prefixed keys (``val_loss``, ``val/loss``);
    the series name is ``split/metric`` either way.
    """
    xname = (
        "epoch"
        if any("epoch" in r for r in rows)
        else "step"
        if any("step" in r for r in rows)
        else "row"
    )
    series: dict[str, list[tuple[float, float]]] = {}
    for i, row in enumerate(rows):
        x = row.get(xname, i)
        if not isinstance(x, (int, float)):
            continue
        split = row.get("split") or row.get("phase")
        for key, value in row.items():
            if (
                key in _NOT_CURVES
                or _base_metric(key)[0] in _NOT_CURVES
                or key in ("split", "phase")
                or any(part in key for part in _NOT_CURVE_PARTS)
            ):
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if not math.isfinite(value):
                continue
            name = f"{split}/{key}" if isinstance(split, str) else key
            series.setdefault(name, []).append((float(x), float(value)))
    return xname, series


def _base_metric(name: str) -> tuple[str, str]:
    """``"val_loss"`` -> ``("loss", "val")``; ``"loss"`` -> ``("loss", "train")``."""
    for sep in ("/", "_", "."):
        for split in ("train", "val", "valid", "validation", "test"):
            if name.startswith(split + sep):
                return name[len(split) + 1 :], split
    return name, "train"


def plot_training_curves(
    rows: Sequence[Mapping[str, Any]], path: str | os.PathLike[str], title: str = "training"
) -> Path:
    """One panel per metric (loss, kl, ...), train solid and validation dashed."""
    xname, series = curve_series(rows)
    if not series:
        raise GenlatentError(f"no numeric metrics to plot for {path}")
    panels: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for name, points in series.items():
        base, split = _base_metric(name)
        panels.setdefault(base, {})[split] = points
    for base in list(panels):
        values = {v for points in panels[base].values() for _, v in points}
        if base != "loss" and len(values) <= 1 and len(panels) > 1:
            del panels[base]  # a constant (kl_weight without warm-up) says nothing
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    order = {name: i for i, name in enumerate(_FIRST_PANELS)}
    names = sorted(panels, key=lambda b: (order.get(b, len(order)), b))
    ncols = min(3, len(names))
    nrows = math.ceil(len(names) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), squeeze=False)
    for ax, base in zip(axes.flat, names, strict=False):
        for split, points in sorted(panels[base].items()):
            xs, ys = zip(*sorted(points), strict=True)
            style = "-" if split == "train" else "--"
            ax.plot(xs, ys, style, marker="o" if len(xs) < 30 else None, ms=3, label=split)
        ax.set_title(base)
        ax.set_xlabel(xname)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


# --------------------------------------------------------------------------- latent space


def project_2d(z: np.ndarray) -> tuple[np.ndarray, tuple[str, str]]:
    """Latent codes as 2-D points: as they are when 2-D (a 1-D code gets a zero second axis),
    else their first two principal components; with axis labels."""
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2:
        raise GenlatentError(f"latent codes must be (N, latent_dim), got shape {list(z.shape)}")
    if z.shape[1] == 1:
        return np.concatenate([z, np.zeros_like(z)], axis=1), ("z1", "")
    if z.shape[1] == 2:
        return z, ("z1", "z2")
    centered = z - z.mean(axis=0, keepdims=True)
    _, s, vt = np.linalg.svd(centered, full_matrices=False)
    var = s**2 / max(float((s**2).sum()), 1e-300)
    points = centered @ vt[:2].T
    return points, (f"PC1 ({var[0]:.0%} of variance)", f"PC2 ({var[1]:.0%} of variance)")


def plot_latent_space(
    z: np.ndarray,
    path: str | os.PathLike[str],
    labels: np.ndarray | None = None,
    label_name: str = "label",
    title: str = "latent space (posterior means)",
    class_names: Sequence[str] | None = None,
) -> Path:
    """Scatter of the codes (PCA when more than 2-D), coloured by ``labels`` if given:
    a legend for at most 20 distinct integer labels, else a colour bar."""
    points, (xlabel, ylabel) = project_2d(z)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 5.4))
    size = 6 if len(points) > 2000 else 12
    if labels is None:
        ax.scatter(points[:, 0], points[:, 1], s=size, alpha=0.6, lw=0)
    else:
        labels = np.asarray(labels)
        if labels.shape[0] != points.shape[0]:
            raise GenlatentError(
                f"{len(labels)} labels for {len(points)} latent codes; they must match"
            )
        if labels.dtype.kind in "SUO":
            labels = labels.astype(str)
            values, codes = np.unique(labels, return_inverse=True)
        else:
            values, codes = np.unique(labels, return_inverse=True)
        integer_like = labels.dtype.kind in "SUbiu" or np.all(np.mod(values, 1) == 0)
        if integer_like and len(values) <= 20:
            cmap = plt.get_cmap("tab10" if len(values) <= 10 else "tab20")
            for i, value in enumerate(values):
                mask = codes == i
                ax.scatter(
                    points[mask, 0],
                    points[mask, 1],
                    s=size,
                    alpha=0.7,
                    lw=0,
                    color=cmap(i),
                    label=_class_name(value, class_names),
                )
            ax.legend(title=label_name, fontsize=8, markerscale=2, loc="best")
        else:
            sc = ax.scatter(
                points[:, 0],
                points[:, 1],
                s=size,
                alpha=0.7,
                lw=0,
                c=labels.astype(float),
                cmap="viridis",
            )
            fig.colorbar(sc, ax=ax, label=label_name)
    ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path)


# --------------------------------------------------------------------------- examples


def _image_of(example: np.ndarray, data: DataSpec) -> np.ndarray | None:
    """An example as an (H, W) or (H, W, 3) image, or None if it is not 2-D data."""
    shape = data.extra.get("image_shape") if data.extra else None
    if data.kind == "grids" and len(data.shape) == 3:
        arr = np.asarray(example).reshape(data.shape)
        if arr.shape[0] == 3:
            return np.clip(np.moveaxis(arr, 0, -1), 0.0, 1.0)
        return arr[0]
    if shape is not None and int(np.prod(shape)) == int(np.asarray(example).size):
        return np.asarray(example).reshape([s for s in shape if s != 1] or shape)
    return None


def _value_range(arrays: Sequence[np.ndarray]) -> tuple[float, float]:
    flat = np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays])
    flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        return 0.0, 1.0
    lo, hi = float(flat.min()), float(flat.max())
    if lo >= 0.0 and hi <= 1.0:
        return 0.0, 1.0
    if lo >= -1.0 and hi <= 1.0:
        return -1.0, 1.0
    return (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)


def draw_rows(
    data: DataSpec,
    rows: Sequence[tuple[str, Sequence[Any]]],
    path: str | os.PathLike[str],
    title: str,
) -> Path:
    """A figure of labelled rows of examples, drawn by data kind.

    Images and lattices (``grids`` of shape ``(C, H, W)``) are images in a grid, one picture
    per cell; 1-D signals (``(C, L)``), vectors and counts are line plots in a grid; token
    sequences are given as strings and drawn as a text table whose columns are the rows.
    """
    if not rows or not any(len(r[1]) for r in rows):
        raise GenlatentError(f"nothing to draw for {path}")
    if data.kind == "tokens":
        return _draw_text_table(rows, path, title)
    plt = pyplot()
    ncols = max(len(r[1]) for r in rows)
    nrows = len(rows)
    first = np.asarray(rows[0][1][0])
    as_image = _image_of(first, data) is not None
    cell = (1.3, 1.3) if as_image else (2.2, 1.4)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(max(4.0, cell[0] * ncols + 1.0), cell[1] * nrows + 0.8),
        squeeze=False,
    )
    lo, hi = _value_range([np.asarray(x) for _, xs in rows for x in xs])
    lattice = as_image and lo == -1.0
    for r, (label, examples) in enumerate(rows):
        for c in range(ncols):
            ax = axes[r, c]
            if c >= len(examples):
                ax.axis("off")
                continue
            example = np.asarray(examples[c], dtype=np.float64)
            if as_image:
                image = _image_of(example, data)
                ax.imshow(
                    image,
                    cmap="coolwarm" if lattice else "gray",
                    vmin=lo,
                    vmax=hi,
                    interpolation="nearest",
                )
                ax.set_xticks([])
                ax.set_yticks([])
            else:
                lines = example.reshape(data.shape)
                lines = lines[None] if lines.ndim == 1 else lines
                for channel in lines:
                    ax.plot(channel, lw=0.8)
                ax.set_ylim(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
                ax.tick_params(labelsize=5)
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def _draw_text_table(
    rows: Sequence[tuple[str, Sequence[Any]]], path: str | os.PathLike[str], title: str
) -> Path:
    plt = pyplot()
    columns = [label for label, _ in rows]
    length = max(len(xs) for _, xs in rows)
    cells = [[_clip(str(xs[i])) if i < len(xs) else "" for _, xs in rows] for i in range(length)]
    widest = max(max(len(c) for row in cells for c in row), max(len(c) for c in columns), 8)
    height = 0.7 + 0.22 * (length + 1)
    fig, ax = plt.subplots(figsize=(min(1.0 + 0.075 * widest * len(columns), 30), height))
    ax.axis("off")
    table = ax.table(
        cellText=cells,
        colLabels=columns,
        rowLabels=[str(i) for i in range(length)],
        cellLoc="left",
        bbox=[0.0, 0.0, 1.0, 1.0],
    )
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    for cell in table.get_celld().values():
        cell.get_text().set_fontfamily("monospace")
    ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path)


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _class_name(value: Any, names: Sequence[str] | None) -> str:
    """``names[value]`` for an integer class id within range, else the value itself."""
    if names is not None and isinstance(value, (int, np.integer)) and 0 <= int(value) < len(names):
        return str(names[int(value)])
    return str(value)
