"""The numbers of a latent-space report: the questions a textbook asks of an autoencoder.

:func:`latent_report` answers, for a trained model and a dataset (typically held out):

- **fit**: per-example nats (neg ELBO, reconstruction, KL) on the examined rows;
- **compression**: the model's reconstruction error against PCA with as many components as
  the model has latent dimensions, fitted on the same rows (in-sample, which favours PCA),
  both as the squared error per example in the units of the data as read;
- **continuity**: trustworthiness and continuity (Venna & Kaski 2001) of the map from data to
  posterior means over k nearest neighbours: are latent neighbours data neighbours, and do
  data neighbours stay latent neighbours;
- **completeness** (models with a prior): where codes drawn from the prior land after a round
  trip decode -> encode, compared with where the data's codes sit; the aggregate posterior
  against the prior (a moment-matched Gaussian KL and an MMD with its noise level); validity
  of decoded molecules when ``genlatent.analysis.molecules`` and RDKit are available;
- **overfitting**: the gap between validation and training neg ELBO per epoch, from the run's
  ``metrics.jsonl``;
- **active units** (Burda et al. 2016).

The helpers (:func:`pca_error`, :func:`trustworthiness`, :func:`gaussian_kl`, :func:`mmd2`)
take plain arrays so they can be checked against closed forms.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..errors import GenlatentError
from . import inference
from .latent_measures import (
    aggregate_moments,
    continuity,
    gaussian_kl,
    mmd2,
    nearest_distances,
    neighbourhood_scores,
    overfitting,
    pca_error,
    pca_fit_error,
    prior_moments,
    squared_error,
    trustworthiness,
)

# the measures stay importable from here, where the report's callers have always found them
__all__ = [
    "aggregate_moments",
    "continuity",
    "gaussian_kl",
    "latent_report",
    "mmd2",
    "nearest_distances",
    "neighbourhood_scores",
    "overfitting",
    "pca_error",
    "pca_fit_error",
    "prior_moments",
    "squared_error",
    "trustworthiness",
]

Progress = Callable[[str], None]


def _quiet(message: str) -> None:
    pass


# --------------------------------------------------------------------------- the report


def _take_rows(dataset: Any, limit: int, seed: int) -> np.ndarray:
    n = len(dataset)
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def _flat_inputs(model: Any, x: torch.Tensor) -> np.ndarray:
    """Examples as flat float rows for distances: values as read, token ids one-hot."""
    if model.data.kind == "tokens":
        vocab = len(model.data.vocab or ()) or int(x.max()) + 1
        onehot = torch.nn.functional.one_hot(x.long(), vocab).float()
        return onehot.reshape(len(x), -1).cpu().numpy()
    return x.float().reshape(len(x), -1).cpu().numpy()


@torch.no_grad()
def _encode(model: Any, x: torch.Tensor, lengths: torch.Tensor | None, batch_size: int):
    """Posterior means, scales and one draw per example (AE: codes, None, None)."""
    means, scales, draws = [], [], []
    vae = inference._is_vae(model)
    for _, xb, lb in _batches(x, lengths, batch_size):
        mean, scale = inference.posterior_moments(model, xb, lb)
        means.append(mean.float().cpu().numpy())
        if vae:
            scales.append(scale.float().cpu().numpy())
            draws.append(model.encode(xb, lb).sample().float().cpu().numpy())
    cat = np.concatenate
    return cat(means), (cat(scales) if scales else None), (cat(draws) if draws else None)


@torch.no_grad()
def _fit(model: Any, x: torch.Tensor, lengths: torch.Tensor | None, batch_size: int):
    """Per-example nats averaged over the rows: neg ELBO, reconstruction, KL (AE: the
    reconstruction NLL at the code)."""
    totals: dict[str, float] = {}
    for _, xb, lb in _batches(x, lengths, batch_size):
        if inference._is_vae(model):
            terms = model.elbo(xb, lb)
            values = {name: terms[name] for name in ("neg_elbo", "reconstruction", "kl")}
        else:
            values = {"reconstruction": model.reconstruction_nll(model.encode(xb, lb), xb, lb)}
        for name, value in values.items():
            totals[name] = totals.get(name, 0.0) + float(value.double().sum())
    return {name: total / len(x) for name, total in totals.items()}


def _batches(x: torch.Tensor, lengths: torch.Tensor | None, batch_size: int):
    """``(start, x, lengths)`` per batch; token batches trimmed to their longest sequence."""
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size]
        lb = lengths[start : start + batch_size] if lengths is not None else None
        if lb is not None:
            xb = xb[:, : int(lb.max())]
        yield start, xb, lb


def _molecule_validity(model: Any, decoded: dict[str, np.ndarray]) -> dict[str, Any] | None:
    """The molecule metrics (validity, uniqueness, ...) of decoded prior samples, when
    ``genlatent.analysis.molecules`` is there; numbers and notes only."""
    if model.data.kind != "tokens":
        return None
    try:
        from . import molecules  # type: ignore[attr-defined]
    except ImportError:
        return None
    scorer = getattr(molecules, "molecule_metrics", None)
    if scorer is None:
        return None
    from .h5out import decode_tokens

    strings = decode_tokens(model.data, decoded["x"])
    try:
        metrics = scorer(strings)
    except Exception as exc:  # noqa: BLE001 - a failing scorer is reported, never fatal
        return {"skipped": f"{type(exc).__name__}: {exc}".splitlines()[0]}
    return {
        name: value
        for name, value in metrics.items()
        if isinstance(value, (int, float, str)) and not isinstance(value, bool)
    }


def latent_report(
    model: Any,
    dataset: Any,
    *,
    metrics: Sequence[Mapping[str, Any]] = (),
    pca_data: Any | None = None,
    max_points: int = 2000,
    neighbours: Sequence[int] = (5, 10, 20),
    prior_samples: int = 1000,
    seed: int = 0,
    batch_size: int = 256,
    progress: Progress = _quiet,
) -> dict[str, Any]:
    """Every number of the report as a JSON-ready dict (see the module docstring).

    Up to ``max_points`` rows of ``dataset`` (a random subset, fixed by ``seed``) are
    examined; the neighbour scores and nearest-neighbour distances cost O(max_points^2).
    PCA is fitted on those rows (in sample) and, when ``pca_data`` (a dataset, typically the
    training data) is given, also on up to 10000 of its rows: the fair comparison, since the
    model never saw the examined rows either.
    """
    if getattr(model, "condition_dim", 0):
        raise GenlatentError(
            f"{dataset.where}: the latent-space report does not handle conditional models yet "
            f"(this one is conditioned on {', '.join(model.conditions.names)})"
        )
    inference.check_compatible(model, dataset)
    if pca_data is not None:
        inference.check_compatible(model, pca_data)
    torch.manual_seed(seed)
    rows = _take_rows(dataset, max_points, seed)
    n = len(rows)
    if n < 4:
        raise GenlatentError(f"{dataset.where}: a report needs at least 4 examples, got {n}")
    device = model.device
    batch = dataset.read(rows)
    x = batch["x"].to(device)
    lengths = batch.get("lengths")
    lengths = lengths.to(device) if lengths is not None else None
    k = int(model.latent_dim)
    report: dict[str, Any] = {
        "data": {
            "path": str(dataset.path),
            "key": dataset.key,
            "rows": len(dataset),
            "examined": n,
            "kind": model.data.kind,
            "shape": list(model.data.shape),
        },
        "model": {
            "model": model.spec.get("model"),
            "latent_dim": k,
            "prior": (model.spec.get("prior") or {}).get("name"),
            "likelihood": (model.spec.get("likelihood") or {}).get("name"),
        },
        "seed": seed,
    }

    progress(f"evaluating the model on {n} examples")
    report["fit"] = _fit(model, x, lengths, batch_size)

    progress("encoding")
    means, scales, draws = _encode(model, x, lengths, batch_size)
    variances = means.astype(np.float64).var(axis=0)
    report["active_units"] = {
        "count": inference.active_units(means),
        "of": k,
        "threshold": inference.ACTIVE_UNIT_THRESHOLD,
        "variance_of_means": variances.tolist(),
    }

    flat = _flat_inputs(model, x)
    if model.data.kind == "tokens":
        report["compression"] = {"skipped": "token data has no squared reconstruction error"}
    else:
        progress(f"compression: model vs PCA with {k} components")
        recon = inference.decode_codes(model, means, batch_size=batch_size)["x"]
        model_error = squared_error(flat, recon)
        in_sample = pca_error(flat, k)
        pca, fitted_on = (
            in_sample["squared_error"],
            "the examined rows (in sample, which favours PCA)",
        )
        if pca_data is not None:
            fit_rows = _take_rows(pca_data, 10000, seed)
            progress(f"fitting PCA on {len(fit_rows)} rows of {pca_data.where}")
            fit_x = _flat_inputs(model, pca_data.read(fit_rows)["x"])
            pca = pca_fit_error(fit_x, flat, k)
            fitted_on = f"{len(fit_rows)} rows of {pca_data.where}"
        ratio = model_error / pca if pca > 0 else math.inf
        total = in_sample["total_variance"] or math.nan  # constant data: no fractions
        report["compression"] = {
            "units": "squared error per example, summed over the data values as read",
            "model": model_error,
            "pca": pca,
            "pca_components": in_sample["components"],
            "pca_fit": fitted_on,
            "pca_in_sample": in_sample["squared_error"],
            "total_variance": total,
            "model_unexplained_fraction": model_error / total,
            "pca_unexplained_fraction": pca / total,
            "model_over_pca": ratio,
            "model_better_by": 1.0 - ratio,
        }

    usable = [kk for kk in neighbours if 1 <= kk < n / 2]
    if usable:
        progress(f"continuity: trustworthiness and continuity over k = {usable}")
        report["continuity"] = {
            "k": usable,
            "space": "data as read vs posterior means",
            **neighbourhood_scores(flat, means, usable),
        }
    else:
        report["continuity"] = {"skipped": f"too few examples ({n}) for k = {list(neighbours)}"}

    report["completeness"] = _completeness(
        model, means, scales, draws, prior_samples, batch_size, seed, progress
    )
    report["overfitting"] = overfitting(metrics) if metrics else None
    return report


def _completeness(
    model: Any,
    means: np.ndarray,
    scales: np.ndarray | None,
    draws: np.ndarray | None,
    prior_samples: int,
    batch_size: int,
    seed: int,
    progress: Progress,
) -> dict[str, Any]:
    if getattr(model, "prior", None) is None or draws is None:
        return {"skipped": f"model {model.spec.get('model')!r} has no prior"}
    if prior_samples < 2:
        return {"skipped": "no prior samples asked for"}
    progress(f"completeness: {prior_samples} prior samples decoded and encoded again")
    torch.manual_seed(seed + 1)
    drawn = inference.sample_prior(model, prior_samples, batch_size=batch_size)
    x_gen = torch.as_tensor(drawn["x"]).to(model.device)
    lengths = drawn.get("lengths")
    lengths = torch.as_tensor(lengths).to(model.device) if lengths is not None else None
    if model.data.kind == "tokens":
        x_gen = x_gen.long()
        if lengths is not None:
            lengths = lengths.clamp(min=1)
    again, _, _ = _encode(model, x_gen, lengths, batch_size)
    to_data = nearest_distances(again, means)
    within = nearest_distances(means, means, exclude_self=True)
    far = float(np.quantile(within, 0.95))
    out: dict[str, Any] = {
        "prior_samples": int(prior_samples),
        "round_trip": {
            "what": "distance from encode(decode(z ~ prior)) to the nearest data code, vs "
            "each data code's distance to its nearest other data code",
            "median_distance_prior": float(np.median(to_data)),
            "median_distance_data": float(np.median(within)),
            "ratio": float(np.median(to_data) / max(np.median(within), 1e-12)),
            "fraction_beyond_data_95th_percentile": float((to_data > far).mean()),
        },
    }
    mean_q, cov_q = aggregate_moments(means, scales)
    mean_p, cov_p, how = prior_moments(model)
    try:
        kl = gaussian_kl(mean_q, cov_q, mean_p, cov_p)
    except (GenlatentError, np.linalg.LinAlgError):
        kl = None
    prior_draws = drawn["z"]
    mmd, bandwidth = mmd2(draws, prior_draws)
    torch.manual_seed(seed + 2)
    reference = model.prior.sample(len(draws)).float().cpu().numpy()
    noise, _ = mmd2(reference, prior_draws, bandwidth)
    out["aggregate_posterior"] = {
        "mean": mean_q.tolist(),
        "variance": np.diag(cov_q).tolist(),
        "prior_moments": how,
        "gaussian_kl_to_prior": kl,
        "mmd2": mmd,
        "mmd2_prior_vs_prior": noise,
        "mmd_bandwidth": bandwidth,
    }
    validity = _molecule_validity(model, drawn)
    if validity is not None:
        out["molecules"] = validity
    return out
