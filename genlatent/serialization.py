"""Saving and loading models: a folder with the spec, the weights and what made them.

``model.save(dir)`` writes::

    dir/spec.json      the resolved model spec (plain JSON, ``genlatent_spec`` format 2):
                       every part's and the objective's parameters, defaults applied
    dir/weights.pt     the state dict (tensors only), read back with weights_only=True
    dir/meta.json      format tag, genlatent / torch versions, the parts used and the
                       package (and version) that provided each, the weights' SHA-256

The folder is written beside its target and renamed into place, so a crash leaves the old
model or the new one. Loading checks the format tag and the checksum before reading the
weights and never unpickles code. The model is rebuilt from the saved parameters, never from
today's defaults (format-1 specs, which held only what the user typed, are resolved against the
frozen format-1 defaults of :mod:`genlatent.spec_v1`); a model saved by another genlatent
version, or missing a parameter that today's parts have, loads with a
:class:`ModelVersionWarning` that names it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from . import registry
from ._version import __version__
from .atomic import write_json
from .errors import CheckpointError, GenlatentError

if TYPE_CHECKING:
    from .models.base import LatentModel

FORMAT = "genlatent-model"
FORMAT_VERSION = 1
SPEC_FILE, WEIGHTS_FILE, META_FILE = "spec.json", "weights.pt", "meta.json"


class ModelVersionWarning(UserWarning):
    """A saved model comes from another genlatent version or lacks a parameter of today's."""


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_model(model: LatentModel, directory: str | os.PathLike[str]) -> Path:
    """Write ``model`` to ``directory`` atomically (see the module docstring)."""
    from .spec import parts_used

    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    spec = model.spec
    parts = parts_used(spec)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        torch.save(state, tmp / WEIGHTS_FILE)
        write_json(tmp / SPEC_FILE, spec)
        plugins = {
            p["provider"]: p["version"]
            for p in parts.values()
            if p["provider"] != registry.BUILTIN_PROVIDER
        }
        write_json(
            tmp / META_FILE,
            {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "genlatent_version": __version__,
                "torch_version": torch.__version__,
                "parts": parts,
                "plugins": plugins,
                "weights_sha256": sha256_file(tmp / WEIGHTS_FILE),
            },
        )
        _swap_into_place(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _swap_into_place(tmp: Path, target: Path) -> None:
    if target.exists() and not (target / META_FILE).exists() and any(target.iterdir()):
        raise CheckpointError(
            f"{target} exists and is not a genlatent model folder; refusing to overwrite it"
        )
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(
            f"{path.parent}: not a genlatent model folder ({what} missing)"
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: corrupt {what} ({exc})") from None


def read_meta(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The model folder's ``meta.json``, checked to be genlatent's."""
    path = Path(directory)
    if not path.exists():
        raise CheckpointError(f"{path}: no such model folder")
    if not path.is_dir():
        raise CheckpointError(f"{path}: a saved model is a folder with {META_FILE}, not a file")
    meta = _read_json(path / META_FILE, META_FILE)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path / META_FILE}: not a genlatent model (format tag missing)")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: saved by a newer genlatent (format {meta['format_version']}); upgrade"
        )
    return meta


def load_state(path: Path, expected_sha256: str | None = None) -> dict[str, Any]:
    """Read a tensor file safely: checksum first, then ``torch.load(weights_only=True)``."""
    if not path.exists():
        raise CheckpointError(f"{path}: file missing")
    if expected_sha256 is not None and sha256_file(path) != expected_sha256:
        raise CheckpointError(
            f"{path}: checksum does not match the one recorded at save time "
            "(the file was modified or is corrupt)"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError, EOFError, zip errors...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable genlatent weights file ({reason})") from None


def load_model(
    directory: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> LatentModel:
    """Rebuild a model saved by :func:`save_model`."""
    from .spec import build, spec_version, with_legacy_defaults
    from .spec_v1 import upgrade

    path = Path(directory)
    meta = read_meta(path)
    spec = _read_json(path / SPEC_FILE, SPEC_FILE)
    for info in meta.get("parts", {}).values():
        registry.get_part(info["kind"], info["name"], info.get("provider"))
    if not isinstance(spec, dict):
        raise CheckpointError(f"{path / SPEC_FILE}: expected a JSON object (the model spec)")
    saved_by = meta.get("genlatent_version")
    if saved_by != __version__:
        warnings.warn(
            f"{path}: saved by genlatent {saved_by} (spec format "
            f"{spec.get('genlatent_spec', 1)}), loaded by genlatent {__version__}; it is rebuilt "
            "from its recorded parameters",
            ModelVersionWarning,
            stacklevel=2,
        )
    try:
        if spec_version(spec) == 1:
            spec = upgrade(spec)  # the format-1 defaults it was saved under
        spec = with_legacy_defaults(spec)
        model = build(spec)
    except GenlatentError as exc:
        raise CheckpointError(f"{path / SPEC_FILE}: cannot rebuild the model: {exc}") from None
    _warn_new_params(path / SPEC_FILE, spec, model.spec)
    state = load_state(path / WEIGHTS_FILE, meta.get("weights_sha256"))
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path / WEIGHTS_FILE}: expected a mapping of names to tensors")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(
            f"{path / WEIGHTS_FILE}: weights do not fit the spec ({first})"
        ) from None
    model.to(map_location)
    model.eval()
    return model


def _warn_new_params(where: Path, saved: dict[str, Any], built: dict[str, Any]) -> None:
    """Parameters today's parts have that a saved spec does not record (after the format-1
    defaults and the parts' ``legacy_defaults``) were filled from today's defaults: say so."""
    from .spec import PART_KINDS
    fields = {f: (saved.get(f) or {}).get("params") or {} for f in PART_KINDS}
    fields["objective"] = saved.get("objective") or {}
    for field, params in fields.items():
        entry = built.get(field) or {}
        now = entry.get("params", {}) if field != "objective" else entry
        new = {k: v for k, v in now.items() if k not in params}
        if new:
            named = f"{field} {entry['name']!r}" if field != "objective" else "the objective"
            filled = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(new.items()))
            warnings.warn(
                f"{where}: {named} was saved without {', '.join(sorted(new))}; "
                f"using today's defaults ({filled})",
                ModelVersionWarning,
                stacklevel=3,
            )
