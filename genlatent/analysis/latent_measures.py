"""The measures behind the latent-space report, on plain arrays and metric rows.

Compression (PCA error), continuity (trustworthiness, continuity), completeness (Gaussian
KL, MMD, nearest distances, moments) and overfitting live here, apart from
:func:`genlatent.analysis.latent_report.latent_report`, which encodes data and calls them, so
each can be checked against a closed form.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..errors import GenlatentError

# --------------------------------------------------------------------------- compression


def pca_error(x: np.ndarray, k: int) -> dict[str, float]:
    """Squared reconstruction error per example of PCA with ``k`` components fitted on ``x``
    (rows are examples, flattened), and the total variance per example (the error of
    reconstructing every row by the mean)."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    if len(x) < 2:
        raise GenlatentError("PCA needs at least 2 examples")
    centred = x - x.mean(axis=0, keepdims=True)
    s = np.linalg.svd(centred, compute_uv=False)
    power = s**2 / len(x)  # per-example squared norm along each component
    return {
        "components": int(min(k, len(s))),
        "squared_error": float(power[k:].sum()),
        "total_variance": float(power.sum()),
    }


def pca_fit_error(fit: np.ndarray, x: np.ndarray, k: int) -> float:
    """Squared reconstruction error per example of the rows ``x`` by PCA with ``k``
    components fitted on other rows ``fit`` (out of sample, as the model was trained)."""
    fit = np.asarray(fit, dtype=np.float64).reshape(len(fit), -1)
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    if fit.shape[1] != x.shape[1]:
        raise GenlatentError(
            f"PCA fit data has {fit.shape[1]} values per example, the report data {x.shape[1]}"
        )
    centre = fit.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(fit - centre, full_matrices=False)
    basis = vt[:k]
    centred = x - centre
    residual = centred - (centred @ basis.T) @ basis
    return float((residual**2).sum(axis=1).mean())


def squared_error(x: np.ndarray, x_hat: np.ndarray) -> float:
    """Mean over examples of the squared error summed over the data dimensions."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    x_hat = np.asarray(x_hat, dtype=np.float64).reshape(len(x_hat), -1)
    return float(((x - x_hat) ** 2).sum(axis=1).mean())


# --------------------------------------------------------------------------- continuity


def _squared_distances(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    sq = (a * a).sum(axis=1)
    d = sq[:, None] + sq[None, :] - 2.0 * (a @ a.T)
    np.maximum(d, 0.0, out=d)
    return d


def _neighbour_order(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the other points by increasing distance (``order``, self excluded) and the
    rank of every point (self 0, nearest other 1, ...)."""
    d = _squared_distances(points)
    np.fill_diagonal(d, -np.inf)  # self first, whatever the ties
    order = np.argsort(d, axis=1, kind="stable")
    n = len(d)
    ranks = np.empty_like(order)
    ranks[np.arange(n)[:, None], order] = np.arange(n)[None, :]
    return order[:, 1:], ranks


def _trust_from(order_low: np.ndarray, ranks_high: np.ndarray, k: int) -> float:
    n = len(order_low)
    neighbours = order_low[:, :k]
    excess = ranks_high[np.arange(n)[:, None], neighbours] - k
    penalty = np.clip(excess, 0, None).sum(dtype=np.float64)
    return float(1.0 - 2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0)) * penalty)


def _check_k(n: int, k: int) -> None:
    if not 1 <= k < n / 2:
        raise GenlatentError(f"neighbours k={k} must be at least 1 and below half the {n} examples")


def trustworthiness(high: np.ndarray, low: np.ndarray, k: int = 10) -> float:
    """Trustworthiness of the embedding ``low`` of ``high`` (rows matched) over ``k``
    neighbours: 1 when every latent neighbour is also a data neighbour; penalises points that
    are close in latent space but far apart in data space, by their data-space rank."""
    _check_k(len(high), k)
    order_low, _ = _neighbour_order(low)
    _, ranks_high = _neighbour_order(high)
    return _trust_from(order_low, ranks_high, k)


def continuity(high: np.ndarray, low: np.ndarray, k: int = 10) -> float:
    """Continuity over ``k`` neighbours: trustworthiness with the roles swapped (data
    neighbours that the embedding tears apart are penalised by their latent rank)."""
    return trustworthiness(low, high, k)


def neighbourhood_scores(
    high: np.ndarray, low: np.ndarray, ks: Sequence[int] = (5, 10, 20)
) -> dict[str, dict[str, float]]:
    """Trustworthiness and continuity for several ``k`` from one pair of neighbour orders."""
    n = len(high)
    order_low, ranks_low = _neighbour_order(low)
    order_high, ranks_high = _neighbour_order(high)
    out: dict[str, dict[str, float]] = {"trustworthiness": {}, "continuity": {}}
    for k in ks:
        _check_k(n, k)
        out["trustworthiness"][str(k)] = _trust_from(order_low, ranks_high, k)
        out["continuity"][str(k)] = _trust_from(order_high, ranks_low, k)
    return out


# --------------------------------------------------------------------------- completeness


def gaussian_kl(
    mean_q: np.ndarray, cov_q: np.ndarray, mean_p: np.ndarray, cov_p: np.ndarray
) -> float:
    """KL(N(mean_q, cov_q) || N(mean_p, cov_p)) in nats."""
    mean_q, mean_p = np.asarray(mean_q, np.float64), np.asarray(mean_p, np.float64)
    cov_q, cov_p = np.atleast_2d(cov_q).astype(np.float64), np.atleast_2d(cov_p).astype(np.float64)
    d = mean_q.shape[0]
    chol_p = np.linalg.cholesky(cov_p)
    solve = np.linalg.solve(chol_p, cov_q)
    trace = float(np.trace(np.linalg.solve(chol_p.T, solve)))
    diff = np.linalg.solve(chol_p, mean_p - mean_q)
    logdet_p = 2.0 * float(np.log(np.diag(chol_p)).sum())
    sign, logdet_q = np.linalg.slogdet(cov_q)
    if sign <= 0:
        raise GenlatentError("the aggregate posterior's covariance is singular")
    return 0.5 * (trace + float(diff @ diff) - d + logdet_p - logdet_q)


def mmd2(a: np.ndarray, b: np.ndarray, bandwidth: float | None = None) -> tuple[float, float]:
    """Unbiased squared maximum mean discrepancy between samples ``a`` and ``b`` with a
    Gaussian kernel; the bandwidth defaults to the median pairwise distance of the pooled
    samples. Returns ``(mmd2, bandwidth)``."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    m, n = len(a), len(b)
    if m < 2 or n < 2:
        raise GenlatentError("MMD needs at least 2 samples on each side")
    d = _squared_distances(np.concatenate([a, b]))
    if bandwidth is None:
        upper = d[np.triu_indices(m + n, 1)]
        bandwidth = float(np.sqrt(np.median(upper))) or 1.0
    kernel = np.exp(-d / (2.0 * bandwidth**2))
    kaa, kbb, kab = kernel[:m, :m], kernel[m:, m:], kernel[:m, m:]
    value = (
        (kaa.sum() - np.trace(kaa)) / (m * (m - 1))
        + (kbb.sum() - np.trace(kbb)) / (n * (n - 1))
        - 2.0 * kab.mean()
    )
    return float(value), float(bandwidth)


def nearest_distances(queries: np.ndarray, points: np.ndarray, exclude_self: bool = False):
    """Euclidean distance from each query to its nearest point (``exclude_self``: queries are
    the points and a point is not its own neighbour)."""
    q = np.asarray(queries, np.float64)
    p = np.asarray(points, np.float64)
    d = (q * q).sum(1)[:, None] + (p * p).sum(1)[None, :] - 2.0 * q @ p.T
    np.maximum(d, 0.0, out=d)
    if exclude_self:
        np.fill_diagonal(d, np.inf)
    return np.sqrt(d.min(axis=1))


def aggregate_moments(
    means: np.ndarray, scales: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of the aggregate posterior (1/N) sum_n q(z | x_n) with diagonal
    posteriors: the law of total covariance, cov of the means + mean of the variances."""
    means = np.asarray(means, np.float64)
    cov = np.atleast_2d(np.cov(means.T, bias=True))
    if scales is not None:
        cov = cov + np.diag((np.asarray(scales, np.float64) ** 2).mean(axis=0))
    return means.mean(axis=0), cov


def prior_moments(model: Any, samples: int = 20000) -> tuple[np.ndarray, np.ndarray, str]:
    """Mean and covariance of the prior: exact for a factorised prior with moments
    (standard normal, Laplace), else estimated from ``samples`` draws (mixtures)."""
    with torch.no_grad():
        distribution = model.prior()
        if isinstance(distribution, torch.distributions.Independent):
            try:
                mean = distribution.mean.double().cpu().numpy()
                var = distribution.variance.double().cpu().numpy()
                return mean, np.diag(var), "exact"
            except NotImplementedError:
                pass
        draws = distribution.sample((samples,)).double().cpu().numpy()
    return draws.mean(0), np.atleast_2d(np.cov(draws.T, bias=True)), f"{samples} draws"


# --------------------------------------------------------------------------- overfitting


def overfitting(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """Validation minus training neg ELBO (``loss`` for an AE) per epoch, from the run's
    metrics; None when the run logged no validation numbers.

    The training value is the average over the epoch while the weights changed, the
    validation value is measured at the epoch's end, so early gaps are biased low (negative).
    """
    for metric in ("neg_elbo", "loss"):
        epochs, gaps, train, val = [], [], [], []
        for row in rows:
            t, v = row.get(f"train_{metric}"), row.get(f"val_{metric}")
            if isinstance(t, (int, float)) and isinstance(v, (int, float)):
                if math.isfinite(t) and math.isfinite(v):
                    epochs.append(row.get("epoch", len(epochs) + 1))
                    train.append(float(t))
                    val.append(float(v))
                    gaps.append(float(v) - float(t))
        if gaps:
            best = int(np.argmin(val))
            return {
                "metric": metric,
                "epochs": epochs,
                "train": train,
                "val": val,
                "gap": gaps,
                "last_gap": gaps[-1],
                "last_gap_relative": gaps[-1] / abs(train[-1]) if train[-1] else None,
                "best_val_epoch": epochs[best],
                "best_val": val[best],
                "val_rise_since_best": val[-1] - val[best],
            }
    return None
