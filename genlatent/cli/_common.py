"""What every command shares: progress on stderr, results on stdout, common options."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def progress(message: str) -> None:
    """A progress line on stderr (stdout is kept for results)."""
    click.echo(message, err=True)


def emit_json(obj: Any) -> None:
    """One JSON object on one stdout line."""
    click.echo(json.dumps(obj, sort_keys=True, default=_json_default))


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def device_option(func: F) -> F:
    """``--device auto|cpu|cuda|cuda:N|mps``."""
    return click.option(
        "--device",
        default="auto",
        show_default=True,
        help="Where to compute: auto (GPU when there is one), cpu, cuda, cuda:N, mps.",
    )(func)


def batch_size_option(default: int = 256) -> Callable[[F], F]:
    return click.option(
        "--batch-size",
        type=click.IntRange(min=1),
        default=default,
        show_default=True,
        help="Examples per forward pass.",
    )


def resolve_device(name: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; other names are checked."""
    import torch

    from ..errors import GenlatentError

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise GenlatentError(
            f"--device {name!r}: expected auto, cpu, cuda, cuda:N or mps"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise GenlatentError(f"--device {name}: CUDA is not available on this machine")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise GenlatentError(f"--device {name}: MPS is not available on this machine")
    return str(device)


def is_tty() -> bool:
    return sys.stderr.isatty()
