"""The run folder's policy: when a folder holds a run, and what resume / overwrite may do.

One place decides, used by the Trainer (which acts on it) and by the run API and CLI (which
check it before anything is written). A folder holds a run only when something was trained
in it (a checkpoint or a saved model); a folder left by a run stopped before its first
checkpoint (lock, config, empty metrics) does not block a rerun.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import TrainingError

# every file or folder a fit writes; cleared by overwrite
RUN_OUTPUTS = ("checkpoints", "model", "metrics.jsonl", "metrics.csv", "tensorboard",
               "trainer.json", "config.json", "plots")
# what makes a folder hold a run: something trained
TRAINED_OUTPUTS = ("checkpoints", "model")


def trained_outputs(folder: str | Path) -> list[str]:
    """The outputs in ``folder`` that show something was trained there."""
    folder = Path(folder)
    found = []
    for name in TRAINED_OUTPUTS:
        target = folder / name
        if target.is_dir() and any(target.iterdir()) or target.is_file():
            found.append(name)
    return found


def holds_run(folder: str | Path) -> bool:
    """True when something was trained in ``folder`` (a checkpoint or a saved model)."""
    return bool(trained_outputs(folder))


def check_run_folder(folder: str | Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse, with one line, what the policy forbids; writes nothing.

    - ``resume`` and ``overwrite`` exclude each other;
    - the path must be a folder (or not exist);
    - without ``resume`` or ``overwrite``, a folder that holds a run is refused;
    - ``resume`` of a folder with nothing trained starts afresh (the Trainer says so).
    """
    folder = Path(folder)
    if resume and overwrite:
        raise TrainingError("resume and overwrite exclude each other (--resume / --overwrite)")
    if folder.exists() and not folder.is_dir():
        raise TrainingError(f"run folder {folder} exists and is not a folder")
    if resume or overwrite:
        return
    found = trained_outputs(folder)
    if found:
        raise TrainingError(
            f"run folder {folder} already holds a run ({', '.join(found)}); pass --resume "
            "(resume=True) to continue it, --overwrite (overwrite=True) to replace it, or "
            "choose another folder"
        )


def clear_run_outputs(folder: str | Path) -> None:
    """Remove every output of an earlier fit (overwrite, or a run with nothing trained)."""
    import shutil

    folder = Path(folder)
    for name in RUN_OUTPUTS:
        target = folder / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def open_run_folder(folder: str | Path, *, resume: bool, overwrite: bool
                    ) -> tuple[str, str | None] | None:
    """What a fit does with ``folder`` (the Trainer calls it on rank 0, holding the lock):
    refuse per :func:`check_run_folder`; return the checkpoint to resume from (path and
    recorded checksum); else clear the outputs of an earlier fit (``overwrite``, or the
    leftovers of a run with nothing trained) and return None, to start afresh."""
    from .checkpoint import latest_checkpoint  # torch: only when a fit opens the folder

    folder = Path(folder)
    check_run_folder(folder, resume=resume, overwrite=overwrite)
    if resume:
        found = latest_checkpoint(folder)
        if found is not None:
            return str(found[0]), found[1]
        if holds_run(folder):
            raise TrainingError(
                f"resume {folder}: it holds a trained model but no checkpoint to resume from; "
                "pass --overwrite (overwrite=True) to start afresh"
            )
    clear_run_outputs(folder)
    return None
