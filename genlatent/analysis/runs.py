"""Reading what a training run left behind: the model folder, the config and the metrics.

A run folder (written by ``genlatent train`` / :class:`genlatent.Trainer`) holds ``model/``
(``model.save``), ``metrics.jsonl`` (one JSON object per line), ``config.json`` (the resolved
configuration, CLI runs only) and checkpoints. Commands accept either a run folder or a bare
model folder (one with ``meta.json``).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from ..errors import CheckpointError

MODEL_DIR = "model"
METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "config.json"


def model_dir(path: str | os.PathLike[str]) -> Path:
    """The model folder inside a run folder, or ``path`` itself if it is a model folder."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such run or model folder")
    if not path.is_dir():
        raise CheckpointError(
            f"{path}: expected a run folder (with {MODEL_DIR}/) or a model folder"
        )
    if (path / "meta.json").is_file():
        return path
    if (path / MODEL_DIR / "meta.json").is_file():
        return path / MODEL_DIR
    raise CheckpointError(
        f"{path}: not a genlatent run folder (no {MODEL_DIR}/meta.json; did training finish?)"
    )


def run_dir(path: str | os.PathLike[str]) -> Path | None:
    """The run folder for ``path`` (a run folder or the model folder inside one), or None."""
    path = Path(path)
    if (path / MODEL_DIR / "meta.json").is_file():
        return path
    if (path / "meta.json").is_file() and (path.parent / METRICS_FILE).is_file():
        return path.parent
    return None


def load_run_model(path: str | os.PathLike[str], device: str = "cpu") -> Any:
    """The trained model of a run (or model) folder, in eval mode on ``device``."""
    from ..serialization import load_model

    return load_model(model_dir(path), map_location=device)


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows of a run's ``metrics.jsonl`` (a torn last line, from a crash, is skipped)."""
    run = Path(path)
    file = run / METRICS_FILE if run.is_dir() else run
    if not file.is_file():
        return []
    rows = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if number == len(file.read_text(encoding="utf-8").splitlines()):
                continue
            raise CheckpointError(f"{file}: line {number} is not JSON") from None
        if isinstance(row, dict):
            rows.append(row)
    return rows


def metrics_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Rows, epochs, the last value of each numeric metric and the best (lowest) loss-like
    validation values."""
    if not rows:
        return {"rows": 0}
    last: dict[str, Any] = {}
    best: dict[str, float] = {}
    for row in rows:
        split = row.get("split") or row.get("phase")
        for key, value in row.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            name = (
                f"{split}/{key}" if isinstance(split, str) and key not in ("epoch", "step") else key
            )
            last[name] = value
            if math.isfinite(value) and ("val" in name) and ("loss" in name or "elbo" in name):
                best[name] = min(best.get(name, math.inf), float(value))
    epochs = [r["epoch"] for r in rows if isinstance(r.get("epoch"), (int, float))]
    out: dict[str, Any] = {"rows": len(rows), "last": last}
    if epochs:
        out["epochs"] = int(max(epochs)) - int(min(epochs)) + 1
    if best:
        out["best"] = best
    return out


def read_json(path: Path) -> Any:
    """A JSON file, or None if it is missing; a corrupt one is an error naming it."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: corrupt JSON ({exc})") from None


def describe_run(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A JSON-ready summary of a run or model folder: spec, provenance, config, metrics."""
    from ..serialization import read_meta

    mdir = model_dir(path)
    meta = read_meta(mdir)
    spec = read_json(mdir / "spec.json")
    out: dict[str, Any] = {
        "path": str(path),
        "model_dir": str(mdir),
        "spec": spec,
        "genlatent_version": meta.get("genlatent_version"),
        "torch_version": meta.get("torch_version"),
        "plugins": meta.get("plugins", {}),
    }
    run = run_dir(path)
    if run is not None:
        out["run_dir"] = str(run)
        config = read_json(run / CONFIG_FILE)
        if config is not None:
            out["config"] = config
        out["metrics"] = metrics_summary(read_metrics(run))
        checkpoints = sorted(
            str(p.relative_to(run))
            for p in run.rglob("*")
            if p.is_file()
            and p.suffix in (".pt", ".ckpt")
            and MODEL_DIR not in p.relative_to(run).parts[:1]
        )
        out["checkpoints"] = checkpoints
    return out
