"""From a resolved config to a trained run folder: open the data, build the model, fit.

Everything that can be wrong with the input (files, keys, part names, parameters, trainer
options, an existing run folder) is checked by :func:`prepare` before anything is written.
"""

from __future__ import annotations

import copy
import difflib
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import GenlatentError
from . import config as cfg

CONFIG_FILE = "config.json"


@dataclass
class Plan:
    """What :func:`run` needs: the checked config, the model and the data."""

    config: dict[str, Any]
    spec: dict[str, Any]
    out: Path
    resume: bool
    model: Any
    train: Any
    val: Any
    trainer: Any


def open_training_data(config: dict[str, Any]) -> tuple[Any, Any]:
    """The training and validation datasets the config's ``data`` section names."""
    from ..data import open_dataset

    data = config["data"]
    train = open_dataset(data["path"], data["key"], labels=data.get("labels") or None)
    data["key"] = train.key
    if data.get("val"):
        val = open_dataset(data["val"], data.get("val_key") or data["key"])
        if val.spec.to_dict() != train.spec.to_dict():
            raise GenlatentError(
                f"--val {data['val']}: its data ({val.spec.kind} {list(val.spec.shape)}) does "
                f"not match the training data ({train.spec.kind} {list(train.spec.shape)})"
            )
        return train, val
    fraction = data.get("val_fraction")
    if fraction:
        return train.split(float(fraction))
    return train, None


def trainer_options(
    config: dict[str, Any], out: Path, resume: bool, overwrite: bool = False
) -> dict[str, Any]:
    """The Trainer's keyword arguments; an unknown ``train.*`` key names the known ones."""
    from ..training.trainer import Trainer

    options = dict(config["train"])
    accepted = [
        name
        for name, p in inspect.signature(Trainer.__init__).parameters.items()
        if name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    for key in options:
        if key not in accepted or key in ("out_dir", "resume", "overwrite"):
            close = difflib.get_close_matches(key, accepted, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise GenlatentError(
                f"unknown training option train.{key}{hint} Known: {', '.join(sorted(accepted))}"
            )
    options["out_dir"] = str(out)
    options["resume"] = resume
    options["overwrite"] = overwrite
    return options


def _check_out(out: Path, resume: bool, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise GenlatentError(f"--out {out}: exists and is not a folder")
    if resume:
        if not out.is_dir():
            raise GenlatentError(f"--resume: {out} does not exist; nothing to resume")
        return
    if (
        not overwrite
        and out.is_dir()
        and any(
            (out / name).exists() for name in ("model", "checkpoints", "metrics.jsonl", CONFIG_FILE)
        )
    ):
        raise GenlatentError(
            f"--out {out} already holds a run; pass --resume to continue it, --overwrite to "
            "replace it, or choose another --out"
        )


def prepare(
    config: dict[str, Any], out: Path, *, resume: bool = False, overwrite: bool = False
) -> Plan:
    """Check everything and build the model; writes nothing."""
    from ..spec import build, resolve_spec

    if resume and overwrite:
        raise GenlatentError("--resume and --overwrite exclude each other")
    config = copy.deepcopy(config)
    _check_out(out, resume, overwrite)
    train, val = open_training_data(config)
    spec = cfg.model_spec(config, train.spec.to_dict())
    model = build(spec)
    for field in cfg.PART_FIELDS:  # record the parts actually used, defaults included
        config[field] = {"name": spec[field]["name"], "params": dict(spec[field]["params"])}
    config["objective"] = dict(spec["objective"])  # with the token-data defaults, if any
    options = trainer_options(config, out, resume, overwrite)
    if resume:
        recorded = out / CONFIG_FILE
        if recorded.is_file():
            old = cfg.read_config_file(recorded)
            old_spec = cfg.model_spec(
                cfg.merge_file(cfg.default_config(), old, str(recorded)), train.spec.to_dict()
            )
            if resolve_spec(old_spec) != model.spec:
                raise GenlatentError(
                    f"--resume: the model asked for differs from the one in {recorded}; "
                    "leave the parts and latent size as they were"
                )
    from ..training.trainer import Trainer

    options["callbacks"] = [*options.get("callbacks", ()), _config_recorder(config)]
    trainer = Trainer(**options)  # checks its options now, before anything is written
    return Plan(config, model.spec, out, resume, model, train, val, trainer)


def _config_recorder(config: dict[str, Any]) -> Any:
    """A callback that writes ``config.json`` once the trainer holds the run folder (after
    its lock and its refuse/resume decision), so a refused run leaves the folder alone."""
    from ..atomic import write_json
    from ..training.callbacks import Callback

    class RecordConfig(Callback):
        def on_fit_start(self, trainer: Any) -> None:
            if trainer.is_main:
                write_json(Path(trainer.out_dir) / CONFIG_FILE, config)

    return RecordConfig()


def run(plan: Plan) -> dict[str, Any]:
    """Fit (recording the config in the run folder); return the last epoch's metrics."""
    return dict(plan.trainer.fit(plan.model, plan.train, plan.val) or {})


def draw_plots(plan: Plan) -> list[Path]:
    """The run's pictures in ``RUN/plots`` from the validation data (else the training
    data); skipped with a note when matplotlib is missing."""
    from ..analysis.report import make_plots
    from ..data import open_dataset
    from ..serialization import load_model

    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print(
            "note: no pictures (matplotlib missing: pip install 'genlatent[plot]')", file=sys.stderr
        )
        return []
    data = plan.config["data"]
    if data.get("val"):
        shown = open_dataset(data["val"], data.get("val_key") or data["key"], labels=True)
    else:
        shown = open_dataset(data["path"], data["key"], labels=True)
        if data.get("val_fraction"):
            shown = shown.split(float(data["val_fraction"]))[1]
    model = load_model(plan.out / "model")
    print(f"drawing pictures into {plan.out / 'plots'}", file=sys.stderr)
    try:
        return make_plots(plan.out, plan.out / "plots", model, shown, label=data.get("labels"))
    except GenlatentError as exc:  # the run itself is complete: report, do not fail it
        print(f"note: no pictures ({exc})", file=sys.stderr)
        return []
