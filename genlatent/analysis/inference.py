"""Using a trained model on a whole dataset: codes, reconstructions, samples, interpolations,
and the evaluation numbers (per-example nats, IWAE log-likelihood, active units).

Every function streams the dataset in order, a batch at a time, under ``torch.no_grad()``,
so files larger than memory work; results come back as NumPy arrays.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO

import numpy as np
import torch

from ..errors import DataError, GenlatentError

ACTIVE_UNIT_THRESHOLD = 0.01  # Burda et al. (2016): Var_x E_q[z_d] > 0.01


def check_compatible(model: Any, dataset: Any) -> None:
    """The dataset must hold the kind and shape of data the model was trained on; for a
    conditional model it must have the model's condition columns, which are then attached
    (its batches carry ``"condition"``, encoded as in training)."""
    want, got = model.data, dataset.spec
    same_vocab = want.kind != "tokens" or tuple(want.vocab or ()) == tuple(got.vocab or ())
    if want.kind != got.kind or (want.kind != "tokens" and want.shape != got.shape):
        raise DataError(
            f"{dataset.where}: holds {got.kind} data of shape {list(got.shape)}, but the model "
            f"was trained on {want.kind} data of shape {list(want.shape)}"
        )
    if not same_vocab:
        raise DataError(f"{dataset.where}: the token vocabulary differs from the model's")
    positional = not getattr(model.decoder, "autoregressive", False)
    if want.kind == "tokens" and positional and got.shape[0] > want.shape[0]:
        raise DataError(
            f"{dataset.where}: sequences up to {got.shape[0]} tokens, but the model was trained "
            f"on at most {want.shape[0]}"
        )
    if getattr(model, "condition_dim", 0):
        from ..conditions import attach

        attach(dataset, model.conditions)


class RowProgress:
    """Rows done of a pass, with elapsed time and ETA: redrawn in place on a terminal (at
    most every 0.5 s), else a line at most every 30 s; nothing for passes under 2 s."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.label, self.total, self.clock = label, total, clock
        self.stream = stream or sys.stderr
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = clock()
        self.next = self.start + 2.0
        self.shown = False

    def update(self, done: int) -> None:
        now = self.clock()
        if now < self.next:
            return
        from ..training.config import format_duration

        spent = now - self.start
        eta = spent / done * (self.total - done) if done else 0.0
        line = (f"{self.label}: {done}/{self.total} rows, {format_duration(spent)} elapsed, "
                f"ETA {format_duration(eta)}")
        self.stream.write(("\r" + line) if self.live else line + "\n")
        self.stream.flush()
        self.shown = True
        self.next = now + (0.5 if self.live else 30.0)

    def close(self) -> None:
        if self.shown and self.live:
            self.stream.write("\n")
            self.stream.flush()


def iter_batches(
    dataset: Any, batch_size: int, device: str | torch.device = "cpu", limit: int | None = None
) -> Iterator[dict[str, Any]]:
    """The dataset's batches in row order (up to ``limit`` rows), on ``device``."""
    n = len(dataset) if limit is None else min(limit, len(dataset))
    per_read = batch_size * max(1, 4096 // batch_size)
    from . import progress_enabled

    where = str(getattr(dataset, "where", "data"))
    progress = RowProgress(where, n) if progress_enabled() else None
    done = 0
    for start in range(0, n, per_read):
        rows = np.arange(start, min(start + per_read, n))
        bounds = np.append(np.arange(0, rows.size, batch_size), rows.size)
        for batch in dataset.read_batches(rows, bounds):
            yield {
                k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()
            }
            if progress is not None:
                done += len(batch["x"])
                progress.update(done)
    if progress is not None:
        progress.close()


def _is_vae(model: Any) -> bool:
    return getattr(model, "posterior", None) is not None and hasattr(model, "elbo")


def _cond(condition: torch.Tensor | None) -> dict[str, Any]:
    """``condition=`` for model calls, only when there is one (plugin models without it)."""
    return {} if condition is None else {"condition": condition}


def posterior_moments(
    model: Any, x: torch.Tensor, lengths: torch.Tensor | None,
    condition: torch.Tensor | None = None,
) -> tuple:
    """Per-example posterior mean and standard deviation ``(B, D)`` (AE: the code, None)."""
    if not _is_vae(model):
        return model.encode_mean(x, lengths, **_cond(condition)), None
    q = model.encode(x, lengths, **_cond(condition))
    try:
        return q.mean, q.stddev
    except NotImplementedError:  # a posterior without closed-form moments: estimate them
        draws = q.sample((64,))
        return draws.mean(0), draws.std(0)


@torch.no_grad()
def encode_dataset(
    model: Any, dataset: Any, batch_size: int = 256, device: str | torch.device = "cpu"
) -> dict[str, np.ndarray]:
    """``{"mean": (N, D), "scale": (N, D) (VAE only), "index": (N,)}`` for every row."""
    means, scales, index = [], [], []
    for batch in iter_batches(dataset, batch_size, device):
        mean, scale = posterior_moments(
            model, batch["x"], batch.get("lengths"), batch.get("condition")
        )
        means.append(mean.float().cpu().numpy())
        if scale is not None:
            scales.append(scale.float().cpu().numpy())
        index.append(batch["index"].cpu().numpy())
    out = {"mean": np.concatenate(means), "index": np.concatenate(index)}
    if scales:
        out["scale"] = np.concatenate(scales)
    return out


def active_units(means: np.ndarray, threshold: float = ACTIVE_UNIT_THRESHOLD) -> int:
    """Latent dimensions whose posterior mean varies across the data by more than
    ``threshold`` (variance), after Burda et al. (2016)."""
    if means.shape[0] < 2:
        return 0
    return int((np.var(means.astype(np.float64), axis=0) > threshold).sum())


@torch.no_grad()
def evaluate(
    model: Any,
    dataset: Any,
    *,
    iwae_samples: int = 50,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Average per-example nats of ``neg_elbo``, ``reconstruction``, ``kl`` and ``nll`` (the
    IWAE estimate with ``iwae_samples`` draws; skipped when 0) over the dataset, and the
    number of active units. An AE has only ``reconstruction`` (its decoder's NLL at the code).
    """
    check_compatible(model, dataset)
    vae = _is_vae(model)
    if iwae_samples < 0:
        raise GenlatentError(f"--iwae-samples must be >= 0, got {iwae_samples}")
    totals: dict[str, float] = {}
    means = []
    n = 0
    for batch in iter_batches(dataset, batch_size, device):
        x, lengths = batch["x"], batch.get("lengths")
        cond = _cond(batch.get("condition"))
        if vae:
            terms = model.elbo(x, lengths, **cond)
            values = {k: terms[k] for k in ("neg_elbo", "reconstruction", "kl")}
            if iwae_samples:
                values["nll"] = -model.iwae_bound(x, iwae_samples, lengths, **cond)
        else:
            z = model.encode(x, lengths, **cond)
            values = {"reconstruction": model.reconstruction_nll(z, x, lengths, **cond)}
        for name, value in values.items():
            totals[name] = totals.get(name, 0.0) + float(value.double().sum())
        means.append(
            posterior_moments(model, x, lengths, batch.get("condition"))[0].float().cpu().numpy()
        )
        n += x.shape[0]
    result: dict[str, Any] = {name: total / n for name, total in totals.items()}
    for name, value in result.items():
        if not math.isfinite(value):
            raise GenlatentError(f"{dataset.where}: {name} is {value}; the model or data is broken")
    result.update(
        examples=n,
        latent_dim=int(model.latent_dim),
        active_units=active_units(np.concatenate(means)),
        model=model.spec.get("model"),
    )
    if vae:
        result["iwae_samples"] = int(iwae_samples)
    return result


# --------------------------------------------------------------------------- generation


def _as_output(out: Any) -> dict[str, np.ndarray]:
    """``generate_from``'s result as arrays: ``{"x"}`` or ``{"x" (ids), "lengths"}``."""
    if isinstance(out, tuple):
        ids, lengths = out
        return {"x": ids.cpu().numpy(), "lengths": lengths.cpu().numpy()}
    return {"x": out.float().cpu().numpy()}


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for key in parts[0]:
        arrays = [p[key] for p in parts]
        if key == "x" and arrays[0].ndim == 2 and "lengths" in parts[0]:
            width = max(a.shape[1] for a in arrays)  # token ids: pad to the longest batch
            arrays = [np.pad(a, ((0, 0), (0, width - a.shape[1]))) for a in arrays]
        out[key] = np.concatenate(arrays)
    return out


@torch.no_grad()
def decode_codes(
    model: Any,
    z: np.ndarray | torch.Tensor,
    *,
    batch_size: int = 256,
    temperature: float = 1.0,
    mean: bool = True,
    condition: np.ndarray | torch.Tensor | None = None,
) -> dict[str, np.ndarray]:
    """Data made from codes ``z`` ``(N, D)``: the likelihood's mean (or a draw with
    ``mean=False``); token data as ids and lengths, sampled at ``temperature``. A conditional
    model needs ``condition``: encoded vectors ``(N, C)``."""
    z = torch.as_tensor(np.asarray(z, dtype=np.float32)).to(model.device)
    if z.ndim != 2 or z.shape[1] != model.latent_dim:
        raise DataError(
            f"codes must have shape (N, {model.latent_dim}) for this model, got {list(z.shape)}"
        )
    if not torch.isfinite(z).all():
        raise DataError("codes contain NaN or inf")
    if condition is not None:
        condition = torch.as_tensor(np.asarray(condition, dtype=np.float32)).to(model.device)
    parts = []
    for start in range(0, z.shape[0], batch_size):
        chunk = z[start : start + batch_size]
        cond = _cond(None if condition is None else condition[start : start + batch_size])
        if model.data.kind == "tokens":
            out = model.generate_from(
                chunk, temperature=temperature, mean=mean or temperature == 0, **cond
            )
        else:
            out = model.generate_from(chunk, mean=mean, **cond)
        parts.append(_as_output(out))
    return _concat(parts)


@torch.no_grad()
def sample_prior(
    model: Any, n: int, *, temperature: float = 1.0, batch_size: int = 256, mean: bool = True,
    condition: np.ndarray | torch.Tensor | None = None,
) -> dict[str, np.ndarray]:
    """``n`` examples from codes drawn from the prior: ``{"z", "x"[, "lengths"]}``.

    For token data ``temperature`` is the softmax temperature of generation (0: greedy);
    for other data the codes are drawn from the prior and the decoded mean is returned
    (a draw from the likelihood with ``mean=False``). A conditional model needs
    ``condition``, encoded vectors ``(n, C)`` (``model.conditions.encode_values``).
    """
    if n < 1:
        raise GenlatentError(f"-n must be at least 1, got {n}")
    if getattr(model, "prior", None) is None:
        raise GenlatentError(
            f"model {model.spec.get('model')!r} has no prior to sample from; train a 'vae'"
        )
    at = None if condition is None else torch.as_tensor(np.asarray(condition, np.float32))
    z = model.sample_codes(n, None if at is None else at.to(model.device))  # p(z | c) too
    out = decode_codes(
        model, z, batch_size=batch_size, temperature=temperature, mean=mean, condition=condition
    )
    out["z"] = z.float().cpu().numpy()
    return out


@torch.no_grad()
def reconstruct_dataset(
    model: Any,
    dataset: Any,
    *,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    limit: int | None = None,
) -> dict[str, np.ndarray]:
    """Each row decoded from its posterior mean: ``{"x", "index", "z"[, "lengths"]}``."""
    check_compatible(model, dataset)
    parts = []
    for batch in iter_batches(dataset, batch_size, device, limit):
        cond = _cond(batch.get("condition"))
        z = model.encode_mean(batch["x"], batch.get("lengths"), **cond)
        out = _as_output(model.generate_from(z, mean=True, **cond))
        out["z"] = z.float().cpu().numpy()
        out["index"] = batch["index"].cpu().numpy()
        parts.append(out)
    return _concat(parts)


def interpolate_codes(
    za: np.ndarray, zb: np.ndarray, steps: int, method: str = "linear"
) -> np.ndarray:
    """Codes along the path from each row of ``za`` to the same row of ``zb``: ``(P, steps, D)``.

    ``linear`` is the straight line; ``slerp`` follows the great circle (norms interpolated
    linearly), which stays in the typical set of a Gaussian prior.
    """
    if steps < 2:
        raise GenlatentError(f"--steps must be at least 2, got {steps}")
    za = np.asarray(za, dtype=np.float64)
    zb = np.asarray(zb, dtype=np.float64)
    t = np.linspace(0.0, 1.0, steps)[None, :, None]
    if method == "linear":
        return (1 - t) * za[:, None] + t * zb[:, None]
    if method != "slerp":
        raise GenlatentError(f"--method must be linear or slerp, got {method!r}")
    na = np.linalg.norm(za, axis=1, keepdims=True)
    nb = np.linalg.norm(zb, axis=1, keepdims=True)
    ua, ub = za / np.maximum(na, 1e-12), zb / np.maximum(nb, 1e-12)
    omega = np.arccos(np.clip((ua * ub).sum(1, keepdims=True), -1.0, 1.0))[:, None]
    so = np.sin(omega)
    small = so < 1e-6
    wa = np.where(small, 1 - t, np.sin((1 - t) * omega) / np.where(small, 1.0, so))
    wb = np.where(small, t, np.sin(t * omega) / np.where(small, 1.0, so))
    direction = wa * ua[:, None] + wb * ub[:, None]
    norm = (1 - t) * na[:, None] + t * nb[:, None]
    unit = direction / np.maximum(np.linalg.norm(direction, axis=2, keepdims=True), 1e-12)
    return unit * norm


def random_pairs(n: int, count: int, seed: int) -> np.ndarray:
    """``count`` pairs of distinct row ids in ``[0, n)``, ``(count, 2)``, drawn from ``seed``."""
    if n < 2:
        raise DataError(f"needs at least 2 rows to interpolate, got {n}")
    rng = np.random.default_rng(seed)
    return np.stack([rng.choice(n, size=2, replace=False) for _ in range(count)])


@torch.no_grad()
def interpolate_pairs(
    model: Any,
    dataset: Any,
    ends: np.ndarray,
    steps: int,
    method: str = "linear",
    *,
    batch_size: int = 256,
) -> dict[str, np.ndarray]:
    """Data decoded along the paths between the codes (posterior means) of the rows in each
    pair of ``ends`` ``(P, 2)``: ``{"z": (P * steps, D), "x"[, "lengths"]}``, path by path
    (see :func:`interpolate_codes` for ``method``). Each end row is read and encoded once.
    A conditional model's condition moves along the path too, linearly from one end's to the
    other's (``"condition"`` in the result)."""
    ends = np.asarray(ends, dtype=np.int64)
    rows = np.unique(ends.ravel())
    batch = dataset.read(rows)
    lengths = batch.get("lengths")
    condition = batch.get("condition")
    mean, _ = posterior_moments(
        model,
        batch["x"].to(model.device),
        None if lengths is None else lengths.to(model.device),
        None if condition is None else condition.to(model.device),
    )
    mean = mean.float().cpu().numpy()
    za = mean[np.searchsorted(rows, ends[:, 0])]
    zb = mean[np.searchsorted(rows, ends[:, 1])]
    z = interpolate_codes(za, zb, steps, method).astype(np.float32)
    flat = z.reshape(-1, model.latent_dim)
    path_condition = None
    if condition is not None:
        c = condition.cpu().numpy()
        ca, cb = c[np.searchsorted(rows, ends[:, 0])], c[np.searchsorted(rows, ends[:, 1])]
        t = np.linspace(0.0, 1.0, steps)[None, :, None]
        path_condition = ((1 - t) * ca[:, None] + t * cb[:, None]).astype(np.float32)
        path_condition = path_condition.reshape(-1, c.shape[1])
    out = decode_codes(model, flat, batch_size=batch_size, condition=path_condition)
    out["z"] = flat
    if path_condition is not None:
        out["condition"] = path_condition
    return out
