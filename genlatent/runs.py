"""Training runs as a public API: a config in, a run folder out, and the run folder back.

``genlatent train`` is a thin shell over this module, so a Python user gets the same run
folder (``config.json``, ``model/``, ``metrics.jsonl``, checkpoints, ``plots/``) as the CLI::

    import genlatent
    run = genlatent.train("run.toml", data="data.h5", out="runs/a", epochs=5, seed=1)
    run.metrics[-1]["val_loss"]; run.model.encode_mean(x)
    same = genlatent.load_run("runs/a")
    codes = same.encode("test.h5")["mean"]

The config is layered as :mod:`genlatent.config` describes (defaults < file < ``set`` <
flags). Everything that can be wrong with the input (files, keys, part names, parameters,
trainer options, the run folder) is checked by :func:`prepare` before anything is written.

Randomness: the weights are drawn by ``build(spec, seed=<run seed>)``; the Trainer seeds the
sampler, dropout and posterior draws from the same seed (and restores them on resume); the
validation split is the last ``val_fraction`` of the rows (no RNG: importers pre-shuffle);
the pictures and every helper here (``sample``, ``encode``, ``evaluate``, ...) run inside
:func:`seeded`, so the same call gives the same numbers and leaves the caller's RNGs alone.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import inspect
import os
import random
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import config as cfg
from .errors import GenlatentError

CONFIG_FILE = "config.json"
# options the run API sets itself: not accepted in [train]
_OWN_OPTIONS = ("out_dir", "resume", "overwrite", "callbacks")


@contextlib.contextmanager
def seeded(seed: int, device: Any = None) -> Iterator[None]:
    """Run the block with torch, NumPy and ``random`` seeded with ``seed``; the caller's RNG
    states are restored afterwards, so a seeded helper never shifts the caller's stream."""
    import numpy as np
    import torch

    devices = []
    if device is not None and torch.device(device).type == "cuda":
        devices = [torch.device(device).index or 0]
    np_state, py_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed))
        np.random.seed(int(seed) % 2**32)
        random.seed(int(seed))
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)


def _trainer_options() -> dict[str, Any]:
    """The Trainer's keyword options and their defaults."""
    from .training.trainer import Trainer

    return {
        name: p.default
        for name, p in inspect.signature(Trainer.__init__).parameters.items()
        if name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    }


def run_seed(config: dict[str, Any]) -> int:
    """The seed of a resolved config's run (``train.seed``, else the Trainer's default)."""
    seed = config["train"].get("seed", _trainer_options()["seed"])
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise cfg.ConfigError(f"train.seed must be an integer, got {seed!r}")
    return seed


def open_data(
    config: dict[str, Any], labels: bool | str | None = None, conditions: Any = None
) -> tuple[Any, Any]:
    """The training and validation datasets a resolved config's ``data`` section names.

    The one validation rule, used for training and for the pictures: the ``val`` file if
    given (same kind and shape as the training data), else the last ``val_fraction`` of the
    training rows, else none. ``labels`` as for :func:`genlatent.data.open_dataset`
    (default: the config's ``data.labels``).

    Conditions (``data.condition``): their encoding (``conditions``, a trained model's, else
    measured on every row of the training file) is attached to both datasets, whose batches
    then carry ``"condition"``; it is ``train.condition_encoding``.
    """
    from .conditions import ConditionEncoding, attach
    from .data import open_dataset

    data = config["data"]
    if not data.get("path"):
        raise cfg.ConfigError(
            "no training data: give DATA (data= in Python) or data.path in the config"
        )
    labels = labels if labels is not None else (data.get("labels") or None)
    train = open_dataset(data["path"], data.get("key"), labels=labels)
    if conditions is None:
        conditions = ConditionEncoding.measure(train, data.get("condition"))
    attach(train, conditions)  # before the split: both parts carry the conditions
    if data.get("val"):
        val = open_dataset(data["val"], data.get("val_key") or train.key, labels=labels)
        if val.spec.to_dict() != train.spec.to_dict():
            raise GenlatentError(
                f"--val {data['val']}: its data ({val.spec.kind} {list(val.spec.shape)}) does "
                f"not match the training data ({train.spec.kind} {list(train.spec.shape)})"
            )
        return train, attach(val, conditions)
    fraction = data.get("val_fraction")
    if fraction:
        return train.split(float(fraction))
    return train, None


def trainer_options(
    config: dict[str, Any], out: Path, resume: bool, overwrite: bool = False
) -> dict[str, Any]:
    """The Trainer's keyword arguments; an unknown ``train.*`` key names the known ones."""
    accepted = [k for k in _trainer_options() if k not in _OWN_OPTIONS]
    options = dict(config["train"])
    for key in options:
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise GenlatentError(
                f"unknown training option train.{key}{hint} Known: {', '.join(sorted(accepted))}"
            )
    options.update(out_dir=str(out), resume=resume, overwrite=overwrite)
    return options


@dataclass
class RunPlan:
    """A checked run, not started: the resolved config, the built model, data and Trainer.

    ``execute()`` trains and returns the :class:`Run`; nothing is written before it.
    """

    config: dict[str, Any]
    spec: dict[str, Any]
    out: Path
    resume: bool
    model: Any
    train: Any
    val: Any
    trainer: Any
    notes: list[str] = field(default_factory=list)

    @property
    def seed(self) -> int:
        return run_seed(self.config)

    def execute(self, *, plots: bool = True) -> Run:
        """Fit (recording ``config.json`` once the Trainer holds the folder), draw the
        pictures (``plots``), and return the run."""
        self.trainer.fit(self.model, self.train, self.val)
        run = load_run(self.out)
        if plots and self.trainer.is_main:
            run.draw_plots()
        return run


def prepare(
    config_or_path: str | os.PathLike[str] | dict[str, Any] | None = None,
    *,
    data: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str],
    resume: bool = False,
    overwrite: bool = False,
    set: tuple[str, ...] | list[str] = (),  # noqa: A002 - the CLI's --set
    **flags: Any,
) -> RunPlan:
    """Resolve the config, check everything and build the model; writes nothing.

    Arguments as for :func:`train`. With ``resume`` the run folder's ``config.json`` is the
    base the file, ``set`` and flags change.
    """
    from .data.values import summarize_values
    from .spec import build
    from .training.runfolder import check_run_folder
    from .training.trainer import Trainer

    out = Path(out)
    check_run_folder(out, resume=resume, overwrite=overwrite)
    recorded = out / CONFIG_FILE
    base = recorded if resume and recorded.is_file() else None
    if data is not None:
        flags["path"] = str(data)
    if isinstance(config_or_path, os.PathLike):
        config_or_path = os.fspath(config_or_path)
    config, notes = cfg.resolve_config(config_or_path, base=base, assignments=set, flags=flags)
    config = copy.deepcopy(config)
    seed = run_seed(config)
    config["train"]["seed"] = seed  # recorded: the run reproduces even if the default changes
    options = trainer_options(config, out, resume, overwrite)
    train, val = open_data(config)
    config["data"]["key"] = train.key
    # one streaming pass over the values: the default likelihood follows them, and a named
    # likelihood whose support they leave is refused before any weight is made
    values = summarize_values(train)
    spec = cfg.model_spec(config, train.spec.to_dict(), values=values)
    conditions = getattr(train, "condition_encoding", None)
    if conditions:  # measured on the training file: part of the model from now on
        spec["condition"] = conditions.to_spec()
    model = build(spec, seed=seed, values=values)
    for name in cfg.PART_FIELDS:  # record the parts actually used, defaults included
        config[name] = {"name": spec[name]["name"], "params": dict(spec[name]["params"])}
    config["objective"] = dict(spec["objective"])  # with the token-data defaults, if any
    options["callbacks"] = [_config_recorder(config)]
    trainer = Trainer(**options)  # checks its options now, before anything is written
    return RunPlan(config, model.spec, out, resume, model, train, val, trainer, notes)


def train(
    config_or_path: str | os.PathLike[str] | dict[str, Any] | None = None,
    *,
    data: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str],
    resume: bool = False,
    overwrite: bool = False,
    set: tuple[str, ...] | list[str] = (),  # noqa: A002 - the CLI's --set
    plots: bool = True,
    **flags: Any,
) -> Run:
    """Train a model into the run folder ``out``, exactly as ``genlatent train`` does.

    The public signature is spelled out (type hints, help()); :func:`prepare` checks it.

    Args:
        config_or_path: a TOML (``.toml``) or JSON config file, or a dict of the same layout
            (see :mod:`genlatent.config`), or None for the defaults.
        data: the training HDF5 / ``.h5ad`` file (``DATA`` on the command line).
        out: the run folder.
        resume: continue the run in ``out`` from its last checkpoint, with its
            ``config.json`` as the base config.
        overwrite: replace the run in ``out``.
        set: ``"SECTION.KEY=VALUE"`` assignments, like ``--set``.
        plots: draw the pictures into ``out/plots`` (needs matplotlib).
        **flags: a part name (``encoder="cnn"``), ``model``, ``latent_dim``, a data setting
            (``key``, ``val``, ``val_key``, ``val_fraction``, ``labels``, ``condition``: the
            columns to condition on, ``["T", "cell_type"]``, see :mod:`genlatent.conditions`)
            or any Trainer option (``epochs``, ``lr``, ``seed``, ``device``, ...); they win
            over ``set``.

    Returns:
        The finished :class:`Run`.
    """
    plan = prepare(
        config_or_path, data=data, out=out, resume=resume, overwrite=overwrite, set=set, **flags
    )
    for note in plan.notes:
        warnings.warn(note, stacklevel=2)
    return plan.execute(plots=plots)


def _config_recorder(config: dict[str, Any]) -> Any:
    """A callback that writes ``config.json`` once the trainer holds the run folder (after
    its lock and its refuse/resume decision), so a refused run leaves the folder alone."""
    from .atomic import write_json
    from .training.callbacks import Callback

    class RecordConfig(Callback):
        def on_fit_start(self, trainer: Any) -> None:
            if trainer.is_main:
                write_json(Path(trainer.out_dir) / CONFIG_FILE, config)

    return RecordConfig()


class Run:
    """A trained run folder (or a bare model folder): its model, config and metrics, and
    seeded helpers that use the model. Make one with :func:`load_run` or :func:`train`."""

    def __init__(self, path: str | os.PathLike[str], device: str = "auto") -> None:
        from .analysis.runs import model_dir, read_json, run_dir

        self.model_path = model_dir(path)  # checks that a model is there
        self.path = run_dir(path) or self.model_path
        self.device = device
        config = read_json(self.path / CONFIG_FILE) if self.path != self.model_path else None
        self.config: dict[str, Any] | None = config if isinstance(config, dict) else None
        self._model: Any = None

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @property
    def model(self) -> Any:
        """The trained model (loaded on first use, checksum verified), in eval mode."""
        if self._model is None:
            from .analysis.runs import load_run_model
            from .training.trainer import resolve_device

            self._model = load_run_model(self.model_path, str(resolve_device(self.device)))
        return self._model

    @property
    def spec(self) -> dict[str, Any]:
        """The model's complete spec (as saved)."""
        return self.model.spec

    @property
    def metrics(self) -> list[dict[str, Any]]:
        """One record per epoch from ``metrics.jsonl`` (empty for a bare model folder)."""
        from .analysis.runs import read_metrics

        return read_metrics(self.path) if self.path != self.model_path else []

    @property
    def seed(self) -> int:
        """The run's seed (0 for a bare model folder)."""
        return run_seed(self.config) if self.config else 0

    def data(self, labels: bool | str | None = None) -> tuple[Any, Any]:
        """The run's training and validation datasets (the same rule as in training)."""
        if self.config is None:
            raise GenlatentError(f"{self.path}: a bare model folder has no {CONFIG_FILE}")
        return open_data(self.config, labels=labels, conditions=self.model.conditions)

    def _dataset(self, data: Any, key: str | None, labels: bool | str | None = None) -> Any:
        from .data import open_dataset

        if not isinstance(data, (str, os.PathLike)):
            return data  # already a dataset
        if key is None and self.config is not None:
            key = (self.config.get("data") or {}).get("key")
        return open_dataset(data, key, labels=labels)

    def encode(self, data: Any, *, key: str | None = None, batch_size: int = 256,
               seed: int = 0) -> dict[str, Any]:
        """Posterior means (and scales) of every row: ``{"mean", "scale", "index"}``."""
        from .analysis import inference

        dataset = self._dataset(data, key)
        inference.check_compatible(self.model, dataset)
        with seeded(seed, self.model.device):
            return inference.encode_dataset(self.model, dataset, batch_size, self.model.device)

    def reconstruct(self, data: Any, *, key: str | None = None, limit: int | None = None,
                    batch_size: int = 256, seed: int = 0) -> dict[str, Any]:
        """Each row decoded from its posterior mean: ``{"x", "z", "index"[, "lengths"]}``."""
        from .analysis import inference

        dataset = self._dataset(data, key)
        with seeded(seed, self.model.device):
            return inference.reconstruct_dataset(
                self.model, dataset, batch_size=batch_size, device=self.model.device,
                limit=limit,
            )

    def sample(self, n: int, *, temperature: float = 1.0, draw: bool = False, seed: int = 0,
               batch_size: int = 256, condition: dict[str, Any] | None = None
               ) -> dict[str, Any]:
        """``n`` examples decoded from prior codes: ``{"z", "x"[, "lengths"]}``. Token data
        are sampled at ``temperature`` (0: greedy); other data give the likelihood's mean,
        or a draw from it with ``draw``. A conditional model needs ``condition``: a value
        per condition column (``{"T": 2.0, "cell_type": "B"}``; a list of ``n`` values
        gives each sample its own), and the result has ``"condition"`` (the encoded
        vectors)."""
        from .analysis import inference

        tokens = self.model.data.kind == "tokens"
        mean = temperature == 0 if tokens else not draw
        encoded = None
        if condition is not None or self.model.condition_dim:
            if not self.model.condition_dim:
                raise GenlatentError(f"{self.path}: the model is not conditional; no condition")
            encoded = self.model.conditions.encode_values(condition or {}, n)
        with seeded(seed, self.model.device):
            out = inference.sample_prior(
                self.model, n, temperature=temperature, batch_size=batch_size, mean=mean,
                condition=encoded,
            )
        if encoded is not None:
            out["condition"] = encoded.numpy()
        return out

    def evaluate(self, data: Any, *, key: str | None = None, iwae_samples: int = 50,
                 batch_size: int = 128, seed: int = 0) -> dict[str, Any]:
        """Per-example nats (neg ELBO, reconstruction, KL, IWAE NLL) and active units."""
        from .analysis.inference import evaluate

        dataset = self._dataset(data, key)
        with seeded(seed, self.model.device):
            return evaluate(self.model, dataset, iwae_samples=iwae_samples,
                            batch_size=batch_size, device=self.model.device)

    def draw_plots(self) -> list[Path]:
        """The run's pictures in ``RUN/plots`` from its validation data (else its training
        data); skipped with a note on stderr when matplotlib is missing."""
        from .analysis.report import make_plots

        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("note: no pictures (matplotlib missing: pip install 'genlatent[plot]')",
                  file=sys.stderr)
            return []
        train, val = self.data(labels=True)
        shown = val if val is not None else train
        label = (self.config or {}).get("data", {}).get("labels")
        print(f"drawing pictures into {self.path / 'plots'}", file=sys.stderr)
        try:
            with seeded(self.seed, self.model.device):
                return make_plots(self.path, self.path / "plots", self.model, shown,
                                  label=label, seed=self.seed)
        except GenlatentError as exc:  # the run itself is complete: report, do not fail it
            print(f"note: no pictures ({exc})", file=sys.stderr)
            return []


def load_run(path: str | os.PathLike[str], *, device: str = "auto") -> Run:
    """The run in ``path`` (a run folder, or a model folder); the model loads on first use
    onto ``device`` (``auto``: a GPU when there is one)."""
    return Run(path, device=device)
