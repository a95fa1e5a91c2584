"""The Trainer's options, checked in one place: :class:`TrainerConfig`.

Every option is checked once, when the Trainer is made (before anything is written), with
one shared helper per kind of value, so each error is one line naming the option and what
was expected.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import TrainingError

PRECISIONS = {"32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
_PRECISION_ALIASES = {"fp32": "32", "16": "fp16", "bfloat16": "bf16"}


def check_number(name: str, value: Any, *, integer: bool = False, minimum: float = 0,
                 strict: bool = True, optional: bool = False) -> Any:
    """``value`` if it is a finite number above ``minimum`` (``>=`` unless ``strict``), an
    integer when ``integer``; ``None`` passes when ``optional``. Bools are never numbers."""
    if value is None and optional:
        return None
    kinds = (int,) if integer else (int, float)
    ok = isinstance(value, kinds) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = value > minimum if strict else value >= minimum
    if not ok:
        what = "integer" if integer else "number"
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        if minimum == 0 and strict:
            expected = f"a positive {what}"
        else:
            expected = f"an {what} {bound}" if integer else f"a {what} {bound}"
        raise TrainingError(f"{name} must be {expected}, got {value!r}")
    return value


def parse_every(value: int | str | None) -> tuple[int | None, int | None]:
    """``checkpoint_every`` -> (every N steps, every N epochs)."""
    if value is None or value == "never":
        return None, None
    if isinstance(value, int) and not isinstance(value, bool):
        return check_number("checkpoint_every", value, integer=True), None
    text = str(value).strip().lower()
    if text == "epoch":
        return None, 1
    number, _, unit = text.partition(" ")
    n = int(number) if number.isdigit() else 0
    if n >= 1 and unit in ("step", "steps"):
        return n, None
    if n >= 1 and unit in ("epoch", "epochs"):
        return None, n
    raise TrainingError(
        f"checkpoint_every must be a number of steps, 'N steps', 'N epochs' or 'epoch', "
        f"got {value!r}"
    )


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(d|h|m|s)")
_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(value: float | int | str | None) -> float | None:
    """``max_time`` -> seconds: a number of seconds, or ``"90s"``, ``"30m"``, ``"1h30m"``,
    ``"2d"``, ``"1h 5m 3s"`` (units d, h, m, s, each at most once, largest first)."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip().replace(".", "", 1).isdigit():
        value = float(value)
    if not isinstance(value, str):
        return float(check_number("max_time", value))
    text = value.strip().lower().replace(" ", "")
    parts = _DURATION.findall(text)
    units = [unit for _, unit in parts]
    ordered = units == sorted(units, key="dhms".index) and len(set(units)) == len(units)
    if not parts or "".join(n + u for n, u in parts) != text or not ordered:
        raise TrainingError(
            f"max_time must be seconds or a duration such as '90s', '30m', '1h30m', got {value!r}"
        )
    seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    return float(check_number("max_time", seconds))


def format_duration(seconds: float) -> str:
    """``3725.2`` -> ``"1:02:05"``; under an hour ``"2:05"``."""
    whole = max(0, int(round(seconds)))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def resolve_device(name: str | torch.device, local_rank: int = 0) -> torch.device:
    """``auto`` picks CUDA (this rank's GPU), then MPS, then CPU; others are checked."""
    text = str(name).strip().lower()
    mps = getattr(torch.backends, "mps", None)
    mps_ok = mps is not None and mps.is_available()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
        return torch.device("mps") if mps_ok else torch.device("cpu")
    try:
        device = torch.device(text)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise TrainingError(f"device must be auto, cpu, cuda, cuda:N or mps, got {name!r}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise TrainingError(f"device {name!r}: CUDA is not available on this machine")
        count = torch.cuda.device_count()
        if device.index is None:
            device = torch.device("cuda", local_rank % count)
        elif device.index >= count:
            raise TrainingError(f"device {name!r}: only {count} CUDA device(s) present")
    elif device.type == "mps" and not mps_ok:
        raise TrainingError(f"device {name!r}: MPS is not available on this machine")
    return device


@dataclass
class TrainerConfig:
    """Every option of :class:`~genlatent.training.trainer.Trainer` (callbacks aside),
    checked and normalised on creation; see the Trainer for what each means."""

    epochs: int | None = 10
    max_steps: int | None = None
    max_time: float | str | None = None
    batch_size: int = 128
    device: str | torch.device = "auto"
    precision: str = "32"
    compile: bool = False
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer_options: dict[str, Any] | None = None
    scheduler: str | None = "none"
    scheduler_options: dict[str, Any] | None = None
    grad_clip: float | None = None
    patience: int | None = None
    seed: int = 0
    checkpoint_every: int | str | None = "epoch"
    keep_checkpoints: int = 1
    out_dir: str | Path = "runs/run"
    resume: bool = False
    overwrite: bool = False
    progress: bool = True
    tensorboard: bool | str = "auto"
    check_every: int = 50
    shuffle: bool = True
    num_workers: int = 0
    validate_distributions: bool = False

    def __post_init__(self) -> None:
        if self.epochs is None and self.max_steps is None:
            raise TrainingError("give epochs or max_steps (both are None)")
        for name in ("epochs", "max_steps", "patience"):
            check_number(name, getattr(self, name), integer=True, optional=True)
        for name in ("batch_size", "check_every", "keep_checkpoints"):
            check_number(name, getattr(self, name), integer=True)
        check_number("num_workers", self.num_workers, integer=True, strict=False)
        check_number("seed", self.seed, integer=True, minimum=-(2**63), strict=False)
        self.lr = float(check_number("lr", self.lr))
        self.weight_decay = float(check_number("weight_decay", self.weight_decay, strict=False))
        if self.grad_clip is not None:
            self.grad_clip = float(check_number("grad_clip", self.grad_clip))
        self.max_time_seconds = parse_duration(self.max_time)
        self.every_steps, self.every_epochs = parse_every(self.checkpoint_every)
        precision = str(self.precision).lower().replace("-mixed", "").replace("float", "")
        self.precision = _PRECISION_ALIASES.get(precision, precision)
        if self.precision not in PRECISIONS:
            raise TrainingError(f"precision must be '32', 'bf16' or 'fp16', got {precision!r}")
        if self.tensorboard not in (True, False, "auto"):
            raise TrainingError(f"tensorboard must be 'auto', true or false, "
                                f"got {self.tensorboard!r}")
        if self.resume and self.overwrite:
            raise TrainingError("resume and overwrite exclude each other "
                                "(--resume / --overwrite)")
        self.optimizer_options = dict(self.optimizer_options or {})
        self.scheduler_options = dict(self.scheduler_options or {})
        self.out_dir = Path(self.out_dir)
        for name in ("compile", "resume", "overwrite", "progress", "shuffle",
                     "validate_distributions"):
            setattr(self, name, bool(getattr(self, name)))

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The autocast dtype of ``precision`` (None: full precision)."""
        return PRECISIONS[self.precision]

    def to_json(self) -> dict[str, Any]:
        """The options as plain JSON (trainer.json, checkpoints)."""
        out = {k: v for k, v in asdict(self).items()
               if k not in ("out_dir", "resume", "overwrite", "progress", "tensorboard",
                            "keep_checkpoints", "validate_distributions")}
        out["device"] = str(self.device)
        return out
