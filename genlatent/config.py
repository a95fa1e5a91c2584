"""A training run's configuration: defaults < a TOML/JSON file < ``--set`` < named flags.

This is the one place the layering lives; ``genlatent.train`` and ``genlatent train`` both
call :func:`resolve_config`. A resolved config is a plain dict recorded as ``config.json`` in
the run folder (and readable again as a config file)::

    {
      "data": {"path": "x.h5", "key": "x", "val": null, "val_key": null,
               "val_fraction": 0.1, "labels": null, "condition": ["T"]},
      "model": "vae", "latent_dim": 16,
      "encoder": {"name": "cnn", "params": {"channels": [32, 64]}},
      "decoder": ..., "posterior": ..., "prior": ..., "likelihood": ...,
      "objective": {"beta": 1.0},
      "train": {"epochs": 20, "batch_size": 128, "seed": 0, ...}
    }

In a TOML file a part is a name (``encoder = "cnn"``) or a table whose ``name`` picks the part
and whose other keys are its parameters (``[prior] name = "mixture"  components = 10``).
``--set SECTION.KEY=VALUE`` (``set=`` in Python) sets one value, parsed as JSON when it is
JSON, else kept as a string: ``encoder.channels=[32,64]``, ``train.lr=3e-4``. Named flags
(``--epochs 5`` / ``epochs=5``) are a part name, ``model``, ``latent_dim``, a data setting
or any Trainer option.
"""

from __future__ import annotations

import copy
import difflib
import json
import sys
from pathlib import Path
from typing import Any

from .errors import GenlatentError

PART_FIELDS = ("encoder", "decoder", "posterior", "prior", "likelihood")
SECTIONS = ("data", "objective", "train", *PART_FIELDS)
TOP_LEVEL = ("model", "latent_dim")
DATA_KEYS = ("path", "key", "val", "val_key", "val_fraction", "labels", "condition")


class ConfigError(GenlatentError, ValueError):
    """A config file or ``--set`` value that cannot be used."""


def default_config() -> dict[str, Any]:
    """The config before any file or flag: parts left to the spec's per-kind defaults."""
    return {
        "data": {
            "path": None,
            "key": None,
            "val": None,
            "val_key": None,
            "val_fraction": 0.1,
            "labels": None,
            "condition": None,
        },
        "model": "vae",
        "latent_dim": 16,
        **{field: None for field in PART_FIELDS},
        "objective": {},
        "train": {},
    }


def parse_value(text: str) -> Any:
    """JSON when the text is JSON (numbers, lists, true/false/null), else the string itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_assignment(text: str) -> tuple[str, str | None, Any]:
    """``"encoder.hidden=[400]"`` -> ``("encoder", "hidden", [400])``; ``latent_dim=8`` ->
    ``("latent_dim", None, 8)``."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected SECTION.KEY=VALUE, e.g. encoder.hidden=[400]")
    target, _, raw = text.partition("=")
    target = target.strip()
    value = parse_value(raw.strip())
    if "." not in target:
        if target not in TOP_LEVEL:
            raise ConfigError(
                f"--set {text!r}: unknown setting {target!r}; use SECTION.KEY=VALUE with "
                f"SECTION one of {', '.join(SECTIONS)}, or one of {', '.join(TOP_LEVEL)}"
            )
        return target, None, value
    section, _, key = target.partition(".")
    if section not in SECTIONS:
        raise ConfigError(
            f"--set {text!r}: unknown section {section!r}{_suggest(section, SECTIONS)}; "
            f"expected one of {', '.join(SECTIONS)}"
        )
    if not key:
        raise ConfigError(f"--set {text!r}: missing the key after {section!r}.")
    return section, key, value


def _suggest(name: str, known: Any) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML (``.toml``) or JSON (any other suffix, e.g. a run's ``config.json``) file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".toml":
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover - Python 3.10
            import tomli as tomllib
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON ({exc}); TOML files end in .toml") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a table of settings at the top level")
    return data


def _as_part(where: str, value: Any) -> dict[str, Any] | None:
    """A part as ``{"name", "params"}`` from a name or a table (params flat or nested)."""
    if value is None:
        return None
    if isinstance(value, str):
        return {"name": value, "params": {}}
    if isinstance(value, dict):
        params = dict(value.get("params") or {})
        params.update({k: v for k, v in value.items() if k not in ("name", "params")})
        name = value.get("name")
        if name is not None and not isinstance(name, str):
            raise ConfigError(f"{where}.name must be a string, got {name!r}")
        return {"name": name, "params": params}
    raise ConfigError(f"{where} must be a part name or a table with 'name', got {value!r}")


def merge_file(config: dict[str, Any], data: dict[str, Any], source: str) -> dict[str, Any]:
    """``config`` updated by a config file's contents (checked key by key)."""
    out = copy.deepcopy(config)
    known = set(TOP_LEVEL) | set(SECTIONS) | {"genlatent_spec"}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(
                f"{source}: unknown setting {key!r}{_suggest(key, known)}; "
                f"expected {', '.join(sorted(known - {'genlatent_spec'}))}"
            )
        if key == "genlatent_spec":
            continue
        if key in PART_FIELDS:
            out[key] = _as_part(f"{source}: {key}", value)
        elif key in ("data", "objective", "train"):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: [{key}] must be a table, got {value!r}")
            if key == "data":
                _check_data_keys(value, source)
            out[key].update(value)
        else:
            out[key] = value
    return out


def _check_data_keys(values: dict[str, Any], source: str) -> None:
    for key in values:
        if key not in DATA_KEYS:
            raise ConfigError(
                f"{source}: unknown data setting {key!r}{_suggest(key, DATA_KEYS)}; "
                f"expected {', '.join(DATA_KEYS)}"
            )


def apply_assignments(config: dict[str, Any], assignments: list[str]) -> dict[str, Any]:
    """``config`` with each ``--set SECTION.KEY=VALUE`` applied in order."""
    out = copy.deepcopy(config)
    for text in assignments:
        section, key, value = parse_assignment(text)
        if key is None:
            out[section] = value
        elif section in PART_FIELDS:
            part = out[section] or {"name": None, "params": {}}
            if key == "name":
                part["name"] = value
            else:
                part["params"][key] = value
            out[section] = part
        else:
            if section == "data":
                _check_data_keys({key: value}, "--set")
            out[section][key] = value
    return out


def apply_flags(config: dict[str, Any], flags: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``config`` with the named flags that were given (not None) applied; and notes for the
    user (a flag that renames a part drops the parameters the config gave the old part).

    A flag is a part name (``encoder="mlp"``), ``model``, ``latent_dim``, a data setting
    (``path``, ``key``, ``val``, ...) or else a training option (``epochs``, ``lr``, ``seed``,
    ...; checked against the Trainer's options when the run is prepared).
    """
    out = copy.deepcopy(config)
    notes: list[str] = []
    for key, value in flags.items():
        if value is None:
            continue
        if key in PART_FIELDS:
            old = out[key]
            if old and old.get("name") not in (None, value) and old.get("params"):
                notes.append(
                    f"--{key} {value} replaces {old['name']!r}; its parameters "
                    f"{json.dumps(old['params'])} were dropped"
                )
                old = None
            out[key] = {"name": value, "params": dict(old["params"]) if old else {}}
        elif key in TOP_LEVEL:
            out[key] = value
        elif key in DATA_KEYS:
            out["data"][key] = str(value) if key in ("path", "val") else value
        elif key in SECTIONS:
            raise ConfigError(
                f"flag {key}= takes a single value; set [{key}] in the config or use "
                f"set=['{key}.KEY=VALUE']"
            )
        else:
            out["train"][key] = value
    return out, notes


def resolve_config(
    config_or_path: str | Path | dict[str, Any] | None = None,
    *,
    base: str | Path | None = None,
    assignments: tuple[str, ...] | list[str] = (),
    flags: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """The resolved config and notes for the user, layered lowest first: defaults, ``base``
    (a resumed run's ``config.json``), ``config_or_path`` (a TOML/JSON file or a mapping of
    the same layout), ``assignments`` (``SECTION.KEY=VALUE``), ``flags``."""
    config = default_config()
    if base is not None:
        config = merge_file(config, read_config_file(base), str(base))
    if isinstance(config_or_path, dict):
        config = merge_file(config, config_or_path, "config")
    elif config_or_path is not None:
        config = merge_file(config, read_config_file(config_or_path), str(config_or_path))
    if isinstance(assignments, str):
        assignments = [assignments]
    config = apply_assignments(config, list(assignments))
    return apply_flags(config, dict(flags or {}))


def model_spec(
    config: dict[str, Any], data_spec: dict[str, Any], values: Any = None
) -> dict[str, Any]:
    """The complete model spec a resolved config describes, for data described by
    ``data_spec``; a part given parameters but no name is the data kind's default part, and
    with ``values`` (the data's :class:`~genlatent.data.values.ValueSummary`) the default
    likelihood is one that fits the values."""
    from .spec import normalize_spec

    objective = dict(config["objective"])
    if data_spec.get("kind") == "tokens" and config["model"] == "vae":
        from .models.vae import TOKEN_OBJECTIVE  # keeps z in use on molecules

        objective = {**TOKEN_OBJECTIVE, **objective}
    spec: dict[str, Any] = {
        "model": config["model"],
        "latent_dim": config["latent_dim"],
        "data": data_spec,
        "objective": objective,
    }
    for field in PART_FIELDS:
        part = config[field]
        if part is not None and part.get("name") is not None:
            spec[field] = {"name": part["name"], "params": dict(part["params"])}
    spec = normalize_spec(spec, values=values)
    for field in PART_FIELDS:
        part = config[field]
        if part is not None and part.get("name") is None:
            spec[field]["params"].update(part["params"])
    return spec
