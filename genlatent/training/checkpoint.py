"""Training checkpoints: everything needed to continue a run exactly, as tensors and plain data.

A run folder holds ``checkpoints/step-00001234.pt`` files and ``checkpoints/latest.json``,
which names the newest one and records its SHA-256. A checkpoint is written to a temp file and
renamed into place, then ``latest.json`` is switched to it (atomically), and only then are
older files deleted, so a crash at any point leaves a complete, checksummed checkpoint.

Every value is a tensor, number, string, bool, None, list, tuple or dict (RNG states are
converted to tensors and lists), so ``torch.load(weights_only=True)`` reads it back: nothing is
ever unpickled.
"""

from __future__ import annotations

import contextlib
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import atomic_path, write_json
from ..errors import CheckpointError
from ..serialization import _read_json, load_state, sha256_file

FORMAT = "genlatent-checkpoint"
FORMAT_VERSION = 1
LATEST = "latest.json"


# --------------------------------------------------------------------------- RNG states


def capture_rng() -> dict[str, Any]:
    """The state of every RNG the training loop may draw from, as tensors and numbers."""
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {
            "version": int(py_version),
            "internal": torch.tensor(py_internal, dtype=torch.int64),
            "gauss_next": py_gauss,
        },
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [s.cpu() for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Put back what :func:`capture_rng` recorded."""
    torch.set_rng_state(state["torch"].to(torch.uint8))
    npk = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            npk["keys"].numpy().astype(np.uint32),
            int(npk["pos"]),
            int(npk["has_gauss"]),
            float(npk["cached_gaussian"]),
        )
    )
    py = state["python"]
    random.setstate((int(py["version"]), tuple(int(v) for v in py["internal"].tolist()),
                     py["gauss_next"]))
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available():
        with contextlib.suppress(RuntimeError, IndexError):
            torch.cuda.set_rng_state_all([s.to(torch.uint8) for s in cuda])


def seed_everything(seed: int) -> None:
    """Seed python ``random``, numpy, torch and every CUDA device."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)  # also seeds every CUDA device


# --------------------------------------------------------------------------- files


def checkpoint_dir(out_dir: Path) -> Path:
    return out_dir / "checkpoints"


def save_checkpoint(out_dir: Path, state: dict[str, Any], keep: int = 1) -> Path:
    """Write ``state`` as the newest checkpoint of the run in ``out_dir``; keep ``keep`` files."""
    folder = checkpoint_dir(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    step = int(state["position"]["step"])
    path = folder / f"step-{step:08d}.pt"
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, **state}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    write_json(
        folder / LATEST,
        {
            "format": FORMAT,
            "file": path.name,
            "sha256": sha256_file(path),
            "step": step,
            "epoch": int(state["position"]["epoch"]),
            "finished": bool(state.get("finished", False)),
        },
    )
    older = sorted(p for p in folder.glob("step-*.pt") if p != path)
    for old in older[: max(0, len(older) - (keep - 1))]:
        with contextlib.suppress(FileNotFoundError):
            old.unlink()
    return path


def latest_checkpoint(out_dir: Path) -> tuple[Path, str | None] | None:
    """Path and recorded checksum of the newest checkpoint in ``out_dir``, or None."""
    folder = checkpoint_dir(out_dir)
    pointer = folder / LATEST
    if pointer.exists():
        info = _read_json(pointer, LATEST)
        if not isinstance(info, dict) or info.get("format") != FORMAT or "file" not in info:
            raise CheckpointError(f"{pointer}: not a genlatent checkpoint pointer")
        return folder / str(info["file"]), info.get("sha256")
    files = sorted(folder.glob("step-*.pt")) if folder.exists() else []
    return (files[-1], None) if files else None


def load_checkpoint(path: Path, expected_sha256: str | None = None) -> dict[str, Any]:
    """Read a checkpoint safely (checksum, ``weights_only=True``) and check its format tag."""
    state = load_state(path, expected_sha256)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a genlatent training checkpoint (format tag missing)")
    if int(state.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: written by a newer genlatent; upgrade to resume it")
    for key in ("model", "optimizer", "position", "rng"):
        if key not in state:
            raise CheckpointError(f"{path}: incomplete checkpoint ({key!r} missing)")
    return state
