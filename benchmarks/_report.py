"""Write a benchmark's result into its own section of BENCHMARKS.md (atomically, locked).

Each benchmark owns the block between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``;
running it again replaces only that block.
"""

from __future__ import annotations

import fcntl
import platform
import re
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "BENCHMARKS.md"
HEADER = "# Benchmarks\n\nEach section is written by the script named in it; rerun it to update.\n"


def machine() -> str:
    """One line describing this machine (CPU count, torch, GPU if any)."""
    import os

    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{platform.machine()} {os.cpu_count()} cores, {gpu}, Python {platform.python_version()}, "
        f"torch {torch.__version__}"
    )


def command() -> str:
    """The command line that ran this benchmark."""
    return "python " + " ".join(shlex.quote(a) for a in sys.argv)


def write_section(name: str, title: str, body: str) -> None:
    """Replace (or append) the section ``name`` of BENCHMARKS.md."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    block = (
        f"<!-- bench:{name} -->\n## {title}\n\n"
        f"- command: `{command()}`\n- machine: {machine()}\n- date: {stamp}\n\n"
        f"{body.strip()}\n<!-- /bench:{name} -->"
    )
    lock_path = REPORT.with_suffix(".lock")
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        text = REPORT.read_text() if REPORT.exists() else HEADER
        pattern = re.compile(
            rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S
        )
        if pattern.search(text):
            text = pattern.sub(lambda _: block, text)
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
        tmp = REPORT.with_suffix(".md.tmp")
        tmp.write_text(text)
        tmp.replace(REPORT)
