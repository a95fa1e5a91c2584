"""What a checkpoint carries across a restart: :class:`ResumeState` (reading) and
:func:`checkpoint_payload` (writing).

A checkpoint holds the position (epoch, batch, step), every rank's RNG states (now and at the
start of the interrupted epoch, so the loader can replay its shuffle), every rank's metric
sums of the interrupted epoch, the history, the callbacks' state and the model's spec. This
module turns those into this rank's view on resume, whatever the number of ranks then.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch

from ..errors import GenlatentError, TrainingError
from . import distributed as ddp
from .checkpoint import capture_rng, load_checkpoint, restore_rng, seed_everything
from .runfolder import open_run_folder


def model_spec_json(model: Any) -> str:
    """The model's spec as recorded in checkpoints (``"{}"`` for a bare module)."""
    return json.dumps(getattr(model, "spec", None) or {}, sort_keys=True)


def spec_differences(saved: Any, current: Any, prefix: str = "") -> list[str]:
    """``["latent_dim 4 -> 8", "encoder.params.hidden [16] -> [32]"]``: where two specs differ."""
    if isinstance(saved, dict) and isinstance(current, dict):
        out: list[str] = []
        for key in sorted(set(saved) | set(current), key=str):
            name = f"{prefix}.{key}" if prefix else str(key)
            if key not in saved:
                out.append(f"{name} (new) -> {json.dumps(current[key])}")
            elif key not in current:
                out.append(f"{name} {json.dumps(saved[key])} -> (absent)")
            else:
                out.extend(spec_differences(saved[key], current[key], name))
        return out
    if saved != current:
        return [f"{prefix or 'spec'} {json.dumps(saved)} -> {json.dumps(current)}"]
    return []


class ResumeState:
    """One loaded checkpoint, seen from this rank (``dist``)."""

    def __init__(self, path: Path, state: dict[str, Any], dist: ddp.DistInfo, seed: int) -> None:
        self.path, self.state, self.dist, self.seed = path, state, dist, seed
        position = state["position"]
        self.epoch, self.batch, self.step = (int(position["epoch"]), int(position["batch"]),
                                             int(position["step"]))
        self.seconds = float(state.get("seconds", 0.0))

    @classmethod
    def open(cls, out_dir: Path, options: Any, dist: ddp.DistInfo) -> ResumeState | None:
        """Apply the run-folder policy (:func:`.runfolder.open_run_folder`: rank 0 decides,
        every rank gets the answer) and load the checkpoint to resume from, if any."""
        answer: Any = None
        if dist.is_main:
            try:
                answer = ("ok", open_run_folder(out_dir, resume=options.resume,
                                                overwrite=options.overwrite))
            except GenlatentError as exc:
                answer = ("error", str(exc))
        answer = ddp.broadcast_object(answer, dist)
        if answer[0] == "error":
            raise TrainingError(answer[1])
        if answer[1] is None:
            return None
        path, sha256 = answer[1]
        return cls(Path(path), load_checkpoint(Path(path), sha256), dist, options.seed)

    def describe(self, out_dir: Path) -> str:
        """``resuming runs/x from epoch 3, step 412 (checkpoints/step-00000412.pt)``: the epoch
        is the one the run continues in (1-based, as progress lines count)."""
        try:
            name = self.path.relative_to(out_dir)
        except ValueError:
            name = self.path
        return f"resuming {out_dir} from epoch {self.epoch + 1}, step {self.step} ({name})"

    # ------------------------------------------------------------------ model and options

    def check_model(self, model: Any, out_dir: Path) -> None:
        """Refuse a model whose spec differs from the one the checkpoint was trained as."""
        saved = json.loads(self.state.get("model_spec") or "{}")
        current = json.loads(model_spec_json(model))
        if saved and current and saved != current:
            diff = spec_differences(saved, current)
            shown = "; ".join(diff[:6]) + (f"; and {len(diff) - 6} more" if len(diff) > 6 else "")
            raise TrainingError(
                f"resume {out_dir}: the model differs from the one in its checkpoint "
                f"({shown}); fit the same model, or start a new run"
            )

    def changed_options(self, config: dict[str, Any]) -> list[str]:
        """Options that change the data order, so the run will not match an unbroken one."""
        saved = self.state.get("config") or {}
        return [f"{k} {saved[k]!r} -> {v!r}" for k, v in config.items()
                if k in ("batch_size", "seed", "shuffle", "world_size")
                and k in saved and saved[k] != v]

    def restore(self, trainer: Any) -> None:
        """Load the weights, optimiser, schedule, scaler, position, history and callback
        states into ``trainer`` (whose model and optimiser are made)."""
        state = self.state
        try:
            trainer.model.load_state_dict(state["model"])
            trainer.optimizer.load_state_dict(state["optimizer"])
            trainer.schedule.load_state_dict(state.get("scheduler") or {})
            if trainer.scaler is not None and state.get("scaler"):
                trainer.scaler.load_state_dict(state["scaler"])
        except (RuntimeError, ValueError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TrainingError(
                f"{trainer.out_dir}: the checkpoint does not fit this model/optimizer ({first})"
            ) from None
        trainer.step, trainer.epoch, trainer.batch = self.step, self.epoch, self.batch
        trainer.history = [dict(r) for r in state.get("history") or []]
        for cb, entry in zip(trainer.callbacks, state.get("callbacks") or [], strict=False):
            if entry.get("class") == type(cb).__name__:
                cb.load_state_dict(dict(entry.get("state") or {}))
        trainer.should_stop = bool(state.get("stopped", False))
        trainer.stop_reason = state.get("stop_reason") if trainer.should_stop else None

    # ------------------------------------------------------------------ per rank

    def partial_sums(self) -> dict[str, Any] | None:
        """This rank's metric sums of the interrupted epoch.

        With another number of ranks than at save time, rank 0 takes the sums of all and the
        others start from zero, so the epoch's totals stay exact.
        """
        partials = self.state.get("partial") if self.batch else None
        if not partials or partials[0] is None:
            return None
        if len(partials) == self.dist.world_size:
            return partials[self.dist.rank]
        first = partials[0]
        if self.dist.rank != 0:
            return {"keys": first["keys"], "sums": torch.zeros_like(first["sums"]),
                    "samples": 0, "seconds": 0.0}
        return {
            "keys": first["keys"],
            "sums": torch.stack([p["sums"] for p in partials]).sum(0),
            "samples": sum(int(p["samples"]) for p in partials),
            "seconds": max(float(p["seconds"]) for p in partials),
        }

    def _restore(self, states: list[Any] | None) -> None:
        if not states:
            return
        if len(states) != self.dist.world_size:
            if self.dist.is_main:
                warnings.warn(
                    f"checkpoint was written by {len(states)} process(es), resuming with "
                    f"{self.dist.world_size}: random streams are reseeded", stacklevel=4,
                )
            seed_everything(self.seed + self.dist.rank + 104729 * self.step)
            return
        restore_rng(states[self.dist.rank])

    def restore_rng(self) -> None:
        """Put this rank's RNG states back as they were at the checkpoint."""
        self._restore(self.state["rng"])

    def restore_epoch_start_rng(self) -> dict[str, Any]:
        """Put back the RNG states of the interrupted epoch's start (for the loader's shuffle);
        returns them, to be saved again by later checkpoints of that epoch."""
        starts = self.state.get("rng_epoch_start")
        self._restore(starts)
        if starts and len(starts) == self.dist.world_size:
            return starts[self.dist.rank]
        return capture_rng()


def checkpoint_payload(trainer: Any, batch: int, finished: bool,
                       partial: dict[str, Any] | None) -> dict[str, Any] | None:
    """The state a checkpoint holds; every rank takes part (RNG states are gathered), rank 0
    gets the dict, the other ranks ``None``."""
    dist = trainer.dist
    rng = ddp.gather_objects(capture_rng(), dist)
    partials = ddp.gather_objects(partial, dist) if batch else None
    rng_start = ddp.gather_objects(trainer.epoch_rng_start if batch else None, dist)
    if not dist.is_main:
        return None
    model = trainer.model
    return {
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.schedule.state_dict(),
        "scaler": trainer.scaler.state_dict() if trainer.scaler is not None else {},
        "position": {"epoch": trainer.epoch, "batch": batch, "step": trainer.step},
        "rng": rng,
        "rng_epoch_start": rng_start if batch else None,
        "partial": partials,
        "history": trainer.history,
        "callbacks": [
            {"class": type(cb).__name__, "state": cb.state_dict()} for cb in trainer.callbacks
        ],
        "stopped": trainer.should_stop,
        "stop_reason": trainer.stop_reason,
        "finished": finished,
        "seconds": trainer.run_seconds(),
        "config": trainer.config(),
        "model_spec": model_spec_json(model),
    }
