"""The training loop: ``genlatent.Trainer(...).fit(model, train, val)``.

What it does around a plain PyTorch loop, and how each costs (almost) nothing per step:

- **metrics** are accumulated on the device (one ``stack`` + ``add_`` per step) and read back
  once per epoch (and when the progress line is redrawn), never with ``.item()`` per step;
- **non-finite losses/gradients** are caught without a sync per step: each step's metrics go
  into a small on-device ring of ``check_every`` rows that is checked once per ``check_every``
  steps, before every checkpoint and at the end of each epoch; the first bad row names the
  step. Weights are checked before a checkpoint is written, so a good checkpoint is never
  replaced by a broken one;
- **checkpoints** (:mod:`.checkpoint`) hold model, optimiser, scheduler, GradScaler, callback
  state, the sampler position (epoch, batch), the RNG states and the partial epoch's metric
  sums, so ``resume=True`` continues bit-for-bit (on CPU) where the run stopped;
- **DDP** (:mod:`.distributed`): under ``torchrun`` the model is wrapped in
  DistributedDataParallel, each rank reads its shard, metric sums are all-reduced, rank 0
  writes;
- **run folder**: locked while in use (:mod:`.runlock`), never silently overwritten.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..atomic import write_json, write_text
from ..errors import GenlatentError, TrainingError
from . import distributed as ddp
from .callbacks import Callback, EarlyStopping, make_callback
from .checkpoint import (
    capture_rng,
    latest_checkpoint,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
    seed_everything,
)
from .optim import Schedule, make_optimizer, make_schedule
from .progress import Progress
from .runlock import RunLock

PRECISIONS = {"32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
RUN_OUTPUTS = ("checkpoints", "model", "metrics.jsonl", "metrics.csv", "tensorboard",
               "trainer.json")


class _LossModule(nn.Module):
    """``forward`` = ``model.loss``, so DDP and ``torch.compile`` see the loss as a forward."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, Tensor], step: int) -> tuple[Tensor, dict[str, Tensor]]:
        return self.model.loss(batch, step)


def _as_batch(batch: Any) -> dict[str, Any]:
    """Loaders may yield dicts (genlatent's), bare tensors or ``(x, ...)`` tuples."""
    if type(batch) is dict:
        return batch
    if isinstance(batch, Tensor):
        return {"x": batch}
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], Tensor):
        return {"x": batch[0]}
    if isinstance(batch, dict):
        return dict(batch)
    raise TrainingError(f"a batch must be a dict with 'x', a tensor or a tuple, got {type(batch)}")


def _parse_every(value: int | str | None) -> tuple[int | None, int | None]:
    """``checkpoint_every`` -> (every N steps, every N epochs)."""
    if value is None or value == "never":
        return None, None
    if isinstance(value, bool):
        raise TrainingError(f"checkpoint_every must be steps or epochs, got {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise TrainingError(f"checkpoint_every must be >= 1, got {value}")
        return value, None
    text = str(value).strip().lower()
    if text == "epoch":
        return None, 1
    number, _, unit = text.partition(" ")
    try:
        n = int(number)
    except ValueError:
        n = 0
    if n >= 1 and unit in ("step", "steps"):
        return n, None
    if n >= 1 and unit in ("epoch", "epochs"):
        return None, n
    raise TrainingError(
        f"checkpoint_every must be a number of steps, 'N steps', 'N epochs' or 'epoch', "
        f"got {value!r}"
    )


def resolve_device(name: str | torch.device, local_rank: int = 0) -> torch.device:
    """``auto`` picks CUDA (this rank's GPU), then MPS, then CPU; others are checked."""
    text = str(name).strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(text)
    except RuntimeError:
        raise TrainingError(
            f"device must be auto, cpu, cuda, cuda:N or mps, got {name!r}"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise TrainingError(f"device {name!r}: CUDA is not available on this machine")
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
        elif device.index >= torch.cuda.device_count():
            raise TrainingError(
                f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) present"
            )
    elif device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise TrainingError(f"device {name!r}: MPS is not available on this machine")
    elif device.type != "cpu":
        raise TrainingError(f"device must be auto, cpu, cuda, cuda:N or mps, got {name!r}")
    return device


class Trainer:
    """Fits a :class:`~genlatent.models.base.LatentModel` (anything with ``loss(batch, step)``).

    Args:
        epochs: passes over the training data (``None``: until ``max_steps``).
        max_steps: stop after this many optimiser steps (may end mid-epoch).
        batch_size: examples per step when ``fit`` is given a dataset rather than a loader.
        device: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` | ``mps``.
        precision: ``"32"``, ``"bf16"`` (autocast) or ``"fp16"`` (autocast + GradScaler, CUDA).
        compile: run the loss through ``torch.compile``.
        optimizer, lr, weight_decay, optimizer_options: see :func:`.optim.make_optimizer`.
        scheduler, scheduler_options: see :func:`.optim.make_schedule`.
        grad_clip: clip the gradients' global norm to this value.
        patience: early stopping after this many epochs without improvement of the validation
            loss (training loss without validation data).
        seed: seeds python, numpy, torch and CUDA (rank ``r`` uses ``seed + r``).
        checkpoint_every: ``N`` (steps), ``"N steps"``, ``"N epochs"``, ``"epoch"`` or
            ``None``; a checkpoint is also written at the end.
        keep_checkpoints: how many checkpoint files to keep.
        out_dir: the run folder (checkpoints/, model/, metrics.jsonl, trainer.json).
        resume: continue from the run folder's last checkpoint (start afresh if none).
        overwrite: replace an existing run in ``out_dir``; without it (or ``resume``) a
            folder holding a run is refused.
        progress: show a progress line on stderr (rank 0).
        tensorboard: ``"auto"`` (write when TensorBoard is installed), True or False.
        callbacks: :class:`~.callbacks.Callback` instances or registered names.
        check_every: steps between non-finite checks / metric syncs (>= 1).
        shuffle: shuffle the training data (loaders made from datasets only).
        num_workers: reader processes for datasets streamed from disk (in-memory ones are
            read in-process).
        validate_distributions: keep torch/Pyro distribution argument checks on during the fit
            (off by default: each check is a device sync; the trainer checks for non-finite
            values itself).
    """

    def __init__(
        self,
        *,
        epochs: int | None = 10,
        max_steps: int | None = None,
        batch_size: int = 128,
        device: str | torch.device = "auto",
        precision: str = "32",
        compile: bool = False,
        optimizer: str = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        optimizer_options: dict[str, Any] | None = None,
        scheduler: str | None = "none",
        scheduler_options: dict[str, Any] | None = None,
        grad_clip: float | None = None,
        patience: int | None = None,
        seed: int = 0,
        checkpoint_every: int | str | None = "epoch",
        keep_checkpoints: int = 1,
        out_dir: str | Path = "runs/run",
        resume: bool = False,
        overwrite: bool = False,
        progress: bool = True,
        tensorboard: bool | str = "auto",
        callbacks: Sequence[Callback | str | dict[str, Any]] = (),
        check_every: int = 50,
        shuffle: bool = True,
        num_workers: int = 0,
        validate_distributions: bool = False,
    ) -> None:
        if epochs is None and max_steps is None:
            raise TrainingError("give epochs or max_steps (both are None)")
        for name, value in (("epochs", epochs), ("max_steps", max_steps)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                raise TrainingError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise TrainingError(f"batch_size must be a positive integer, got {batch_size!r}")
        precision = str(precision).lower().replace("-mixed", "").replace("float", "")
        precision = {"fp32": "32", "16": "fp16", "bfloat16": "bf16"}.get(precision, precision)
        if precision not in PRECISIONS:
            raise TrainingError(f"precision must be '32', 'bf16' or 'fp16', got {precision!r}")
        if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
            raise TrainingError(f"lr must be a positive number, got {lr!r}")
        if grad_clip is not None and not grad_clip > 0:
            raise TrainingError(f"grad_clip must be a positive number, got {grad_clip!r}")
        if patience is not None and (not isinstance(patience, int) or patience < 1):
            raise TrainingError(f"patience must be a positive integer, got {patience!r}")
        if not isinstance(check_every, int) or check_every < 1:
            raise TrainingError(f"check_every must be a positive integer, got {check_every!r}")
        if keep_checkpoints < 1:
            raise TrainingError(f"keep_checkpoints must be >= 1, got {keep_checkpoints!r}")
        self.every_steps, self.every_epochs = _parse_every(checkpoint_every)
        self.epochs, self.max_steps, self.batch_size = epochs, max_steps, batch_size
        self.device_name, self.precision, self.compile = device, precision, bool(compile)
        self.optimizer_name, self.lr, self.weight_decay = optimizer, float(lr), float(weight_decay)
        self.optimizer_options = dict(optimizer_options or {})
        self.scheduler_name, self.scheduler_options = scheduler, dict(scheduler_options or {})
        self.grad_clip = float(grad_clip) if grad_clip is not None else None
        self.patience, self.seed = patience, int(seed)
        self.checkpoint_every, self.keep_checkpoints = checkpoint_every, int(keep_checkpoints)
        self.out_dir = Path(out_dir)
        self.resume, self.overwrite = bool(resume), bool(overwrite)
        self.show_progress, self.tensorboard = bool(progress), tensorboard
        self.check_every, self.shuffle = check_every, bool(shuffle)
        self.validate_distributions = bool(validate_distributions)
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise TrainingError(f"num_workers must be an integer >= 0, got {num_workers!r}")
        self.num_workers = num_workers
        self.callbacks: list[Callback] = [make_callback(c) for c in callbacks]
        if patience is not None:
            self.callbacks.insert(0, EarlyStopping(patience=patience))
        # run state, set by fit
        self.model: nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.schedule: Schedule = Schedule(None)
        self.scaler: torch.amp.GradScaler | None = None
        self.dist = ddp.DistInfo()
        self.device = torch.device("cpu")
        self.step = 0
        self.epoch = 0
        self.history: list[dict[str, Any]] = []
        self.should_stop = False
        self.stop_reason: str | None = None

    # ------------------------------------------------------------------ public

    @property
    def is_main(self) -> bool:
        """True on the process that writes files (rank 0, or the only process)."""
        return self.dist.is_main

    def config(self) -> dict[str, Any]:
        """The trainer's options as plain JSON (recorded in checkpoints and trainer.json)."""
        return {
            "epochs": self.epochs, "max_steps": self.max_steps, "batch_size": self.batch_size,
            "device": str(self.device_name), "precision": self.precision,
            "compile": self.compile, "optimizer": self.optimizer_name, "lr": self.lr,
            "weight_decay": self.weight_decay, "optimizer_options": self.optimizer_options,
            "scheduler": self.scheduler_name, "scheduler_options": self.scheduler_options,
            "grad_clip": self.grad_clip, "patience": self.patience, "seed": self.seed,
            "checkpoint_every": self.checkpoint_every, "check_every": self.check_every,
            "shuffle": self.shuffle, "num_workers": self.num_workers,
            "world_size": self.dist.world_size,
        }

    def fit(self, model: nn.Module, train: Any, val: Any | None = None) -> dict[str, Any]:
        """Train ``model`` on ``train`` (a loader or an ``H5Dataset``); return the last epoch's
        metrics record. Writes the run folder (rank 0 only) and ``model.save(out_dir/model)``.
        """
        if not callable(getattr(model, "loss", None)):
            raise TrainingError(f"{type(model).__name__} has no loss(batch, step) method")
        device = resolve_device(self.device_name, ddp._env_int("LOCAL_RANK", 0))
        self.dist = ddp.setup(device.type)
        if self.dist.enabled and device.type == "cuda" and str(self.device_name) == "auto":
            device = torch.device("cuda", self.dist.local_rank)
        self.device = device
        if self.precision == "fp16" and device.type != "cuda":
            raise TrainingError("precision 'fp16' needs a CUDA device; use 'bf16' or '32'")
        lock = RunLock(self.out_dir) if self.is_main else None
        validate = torch.distributions.Distribution._validate_args
        try:
            if lock is not None:
                lock.acquire()
            # Argument validation of torch/Pyro distributions costs a host-device sync per
            # distribution made (``if not valid.all()``); non-finite values are caught by the
            # trainer's own checks instead.
            torch.distributions.Distribution.set_default_validate_args(
                self.validate_distributions
            )
            return self._fit_locked(model, train, val)
        finally:
            torch.distributions.Distribution.set_default_validate_args(validate)
            if lock is not None:
                lock.release()

    # ------------------------------------------------------------------ setup

    def _prepare_folder(self) -> tuple[Path, str | None] | None:
        """Rank 0: refuse / clear / find the checkpoint; every rank gets the same answer."""
        answer: Any = None
        if self.is_main:
            try:
                answer = ("ok", self._folder_decision())
            except GenlatentError as exc:
                answer = ("error", str(exc))
        answer = ddp.broadcast_object(answer, self.dist)
        if answer[0] == "error":
            raise TrainingError(answer[1])
        found = answer[1]
        return (Path(found[0]), found[1]) if found else None

    def _folder_decision(self) -> tuple[str, str | None] | None:
        existing = [name for name in RUN_OUTPUTS if (self.out_dir / name).exists()]
        if self.resume:
            found = latest_checkpoint(self.out_dir)
            return (str(found[0]), found[1]) if found else None
        if existing and not self.overwrite:
            raise TrainingError(
                f"run folder {self.out_dir} already holds a run ({', '.join(existing)}); "
                "pass resume=True (--resume) to continue it or overwrite=True to replace it"
            )
        for name in existing:
            target = self.out_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink()
        return None

    def _make_loader(self, data: Any, train: bool) -> Any:
        """Loaders pass through; a dataset (``H5Dataset``) gets the data layer's loader."""
        if hasattr(data, "read_batches") and hasattr(data, "spec"):
            from ..data import make_loader

            return make_loader(
                data,
                batch_size=self.batch_size,
                shuffle=self.shuffle and train,
                seed=self.seed,
                rank=self.dist.rank,
                world_size=self.dist.world_size,
                drop_last=False,
                num_workers=self.num_workers,
            )
        if not isinstance(data, Iterable):
            raise TrainingError(
                f"{'train' if train else 'val'} data must be a loader or an H5Dataset, "
                f"got {type(data).__name__}"
            )
        return data

    def _build_loss_fn(self, model: nn.Module) -> Any:
        if not self.dist.enabled and not self.compile:
            return model.loss  # the leanest path: no wrapper at all
        module: nn.Module = _LossModule(model)
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            module = DistributedDataParallel(module, device_ids=ids)
        if self.compile:
            try:
                module = torch.compile(module)
            except Exception as exc:  # noqa: BLE001 - compile is an optional speed-up
                warnings.warn(f"torch.compile failed, training uncompiled: {exc}", stacklevel=3)
        return module

    def _autocast(self) -> Any:
        dtype = PRECISIONS[self.precision]
        if dtype is None:
            return None
        return lambda: torch.autocast(self.device.type, dtype=dtype)

    def _open_tensorboard(self) -> Any:
        if not self.is_main or self.tensorboard is False:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            if self.tensorboard is True:
                warnings.warn("tensorboard is not installed; no TensorBoard output", stacklevel=3)
            return None
        return SummaryWriter(str(self.out_dir / "tensorboard"))

    # ------------------------------------------------------------------ the fit

    def _fit_locked(self, model: nn.Module, train: Any, val: Any | None) -> dict[str, Any]:
        found = self._prepare_folder()
        seed_everything(self.seed + self.dist.rank)
        self.model = model
        model.to(self.device)
        model.train()
        train_loader = self._make_loader(train, train=True)
        val_loader = self._make_loader(val, train=False) if val is not None else None
        try:
            batches_per_epoch: int | None = len(train_loader)
        except TypeError:
            batches_per_epoch = None
        if self.max_steps is not None:
            total_steps = self.max_steps
        else:
            total_steps = (self.epochs or 1) * (batches_per_epoch or 1)
        self.optimizer = make_optimizer(
            self.optimizer_name, [p for p in model.parameters() if p.requires_grad],
            self.lr, self.weight_decay, **self.optimizer_options,
        )
        self.schedule = make_schedule(
            self.scheduler_name, self.optimizer, total_steps, **dict(self.scheduler_options)
        )
        self.scaler = (
            torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
        )
        self.step, self.epoch, self.history = 0, 0, []
        self.should_stop, self.stop_reason = False, None
        resume_state: dict[str, Any] | None = None
        if found is not None:
            resume_state = load_checkpoint(found[0], found[1])
            self._load_state(resume_state)
            saved = resume_state.get("config") or {}
            changed = [f"{k} {saved[k]!r} -> {v!r}" for k, v in self.config().items()
                       if k in ("batch_size", "seed", "shuffle", "world_size")
                       and k in saved and saved[k] != v]
            if changed and self.is_main:
                warnings.warn(f"resuming {self.out_dir} with {', '.join(changed)}: the run will "
                              "not match an uninterrupted one exactly", stacklevel=3)
        self._loss_fn = self._build_loss_fn(model)
        self._batches_per_epoch = batches_per_epoch
        self._tb = self._open_tensorboard()
        self._progress = Progress() if (self.show_progress and self.is_main) else None
        self._kl_method = _kl_method(model)
        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            write_json(self.out_dir / "trainer.json", self.config())
            self._write_metrics()
        for cb in self.callbacks:
            cb.on_fit_start(self)
        self._step_callbacks = [
            cb for cb in self.callbacks if type(cb).on_step_end is not Callback.on_step_end
        ]
        try:
            record = self._loop(train_loader, val_loader, resume_state)
        finally:
            if self._tb is not None:
                self._tb.close()
        for cb in self.callbacks:
            cb.on_fit_end(self)
        ddp.barrier(self.dist)  # every rank leaves once rank 0 has written the model
        return record

    def _done(self) -> bool:
        if self.should_stop:
            return True
        if self.max_steps is not None and self.step >= self.max_steps:
            return True
        return self.epochs is not None and self.epoch >= self.epochs

    def _loop(self, train_loader: Any, val_loader: Any, resume: dict[str, Any] | None
              ) -> dict[str, Any]:
        start_batch = 0
        partial: dict[str, Any] | None = None
        if resume is not None:
            start_batch = int(resume["position"]["batch"])
            partial = self._own_partial(resume.get("partial"))
            if start_batch == 0:
                self._restore_rank_rng(resume["rng"])
        t_fit = time.perf_counter()
        last_saved = self.step if resume is not None else -1
        while not self._done():
            if start_batch and resume is not None:
                # Replay the epoch's start: the loader sees the RNG state it saw then, skips
                # the batches already done, and the RNG continues from the checkpoint.
                starts = resume.get("rng_epoch_start")
                self._restore_rank_rng(starts)
                rng_at_start = (
                    starts[self.dist.rank]
                    if starts and len(starts) == self.dist.world_size else capture_rng()
                )
                it = self._epoch_iter(train_loader, self.epoch, start_batch)
                self._restore_rank_rng(resume["rng"])
                if self.history and self.history[-1].get("partial_epoch"):
                    self.history.pop()  # an epoch cut short by max_steps: recorded again
            else:
                rng_at_start = capture_rng()
                it = self._epoch_iter(train_loader, self.epoch, 0)
            sums, samples, seconds = self._train_epoch(it, start_batch, partial, rng_at_start)
            start_batch, partial = 0, None
            if self._epoch_complete:
                self.epoch += 1
            self._end_epoch(sums, samples, seconds, val_loader, time.perf_counter() - t_fit)
            due = self.every_epochs is not None and self.epoch % self.every_epochs == 0
            if self._done() or (due and self._epoch_complete):
                if self._epoch_complete:
                    self._checkpoint(batch=0, finished=self._done())
                else:  # max_steps reached mid-epoch: a later resume may finish the epoch
                    self._checkpoint(batch=self._batch, finished=True, partial=self._partial)
                last_saved = self.step
            if not self._epoch_complete:
                break
        if last_saved != self.step:
            self._checkpoint(batch=0, finished=True)
        if self.is_main:
            self._save_model()
        return self.history[-1] if self.history else {}

    def _epoch_iter(self, loader: Any, epoch: int, start_batch: int) -> Iterator[Any]:
        """The epoch's batches from ``start_batch`` on; skipping is done eagerly so that any
        RNG a loader draws from is consumed before the RNG state is restored."""
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        if start_batch and callable(getattr(loader, "iter_from", None)):
            return iter(loader.iter_from(epoch, start_batch))  # the data layer's BlockLoader
        it = iter(loader)
        for _ in range(start_batch):
            next(it)
        return it

    # ------------------------------------------------------------------ the hot loop

    def _train_epoch(
        self, it: Iterator[Any], start_batch: int, partial: dict[str, Any] | None,
        rng_at_start: dict[str, Any] | None,
    ) -> tuple[list[float], int, float]:
        model = self.model
        assert model is not None and self.optimizer is not None
        model.train()
        device, move = self.device, self.device.type != "cpu"
        loss_fn = self._loss_fn
        opt = self.optimizer
        zero_grad, opt_step = opt.zero_grad, opt.step
        sched_step = self.schedule.scheduler.step if self.schedule.every == "step" else None
        scaler = self.scaler
        clip = self.grad_clip
        params = [p for g in opt.param_groups for p in g["params"]]
        clip_norm = torch.nn.utils.clip_grad_norm_
        autocast = self._autocast()
        check_every = self.check_every
        every_steps = self.every_steps
        max_steps = self.max_steps if self.max_steps is not None else -1
        progress = self._progress
        step_callbacks = self._step_callbacks
        total = self._batches_per_epoch

        keys: list[str] | None = partial["keys"] if partial else None
        acc: Tensor | None = partial["sums"].to(device) if partial else None
        rows: list[Tensor] = []
        ring: Tensor | None = None
        samples = int(partial["samples"]) if partial else 0
        prior_seconds = float(partial["seconds"]) if partial else 0.0
        filled = 0  # rows of the ring written since the last check
        batch_index = start_batch
        self._batch = batch_index
        self._epoch_complete = False
        self._epoch_rng_start = rng_at_start
        t0 = time.perf_counter()
        step = self.step
        exhausted = True
        for raw in it:
            batch = _as_batch(raw)
            if move:
                batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()
                         if isinstance(v, Tensor)}
            n = batch["x"].shape[0]
            if autocast is None:
                loss, metrics = loss_fn(batch, step)
            else:
                with autocast():
                    loss, metrics = loss_fn(batch, step)
            zero_grad(set_to_none=True)
            norm = None
            if scaler is None:
                loss.backward()
                if clip is not None:
                    norm = clip_norm(params, clip)
                opt_step()
            else:
                scaler.scale(loss).backward()
                if clip is not None:
                    scaler.unscale_(opt)
                    clip_norm(params, clip)
                scaler.step(opt)
                scaler.update()
            if sched_step is not None:
                sched_step()
            if ring is None:  # first step: fix the metric layout, allocate the buffers
                if keys is None:
                    keys = ["loss", *[k for k in metrics if k != "loss"]]
                    if norm is not None:
                        keys.append("grad_norm")
                    acc = torch.zeros(len(keys), dtype=torch.float64, device=device)
                self._keys = keys
                metric_keys = [k for k in keys[1:] if k != "grad_norm"]
                # metrics a model makes on the host (constants such as kl_weight) are moved
                foreign = any(metrics[k].device != loss.device for k in metric_keys)
                ring = torch.zeros(check_every, len(keys), device=device)
                rows = list(ring.unbind(0))
            values = [loss.detach(), *[metrics[k] for k in metric_keys]]
            if foreign:
                values = [v.to(device, non_blocking=True) for v in values]
            if norm is not None:
                values.append(norm)
            row = rows[filled]
            row.copy_(torch.stack(values))
            acc.add_(row, alpha=n)  # type: ignore[union-attr]
            samples += n
            filled += 1
            step += 1
            batch_index += 1
            self.step, self._batch = step, batch_index
            if filled == check_every:
                self._check_finite(ring, filled, step)
                filled = 0
            if every_steps is not None and step % every_steps == 0:
                self._check_finite(ring, filled, step)
                filled = 0
                self._checkpoint(
                    batch=batch_index,
                    partial={"keys": keys, "sums": acc.detach().cpu(), "samples": samples,
                             "seconds": prior_seconds + time.perf_counter() - t0},
                )
            if step_callbacks:
                for cb in step_callbacks:
                    cb.on_step_end(self, step)
            if progress is not None and progress.due():
                rate = samples / max(1e-9, prior_seconds + time.perf_counter() - t0)
                progress.update(self.epoch + 1, self.epochs, batch_index, total, rate,
                                float(acc[0]) / max(1, samples))  # type: ignore[index]
            if step == max_steps:
                exhausted = total is not None and batch_index >= total
                break
        if ring is not None and filled:
            self._check_finite(ring, filled, step)
        self._epoch_complete = exhausted
        if acc is None or keys is None:
            raise TrainingError("the training data yielded no batches")
        self._partial = {"keys": keys, "sums": acc.detach().cpu().clone(), "samples": samples,
                         "seconds": prior_seconds + time.perf_counter() - t0}
        ddp.all_reduce_sum(acc, self.dist)
        count = torch.tensor([float(samples)], dtype=torch.float64, device=device)
        ddp.all_reduce_sum(count, self.dist)
        total_samples = int(count.item())
        sums = (acc / max(1, total_samples)).tolist()
        seconds = prior_seconds + time.perf_counter() - t0
        return sums, total_samples, seconds

    # ------------------------------------------------------------------ safety

    def _check_finite(self, ring: Tensor, filled: int, step: int) -> None:
        """Raise if any of the last ``filled`` steps (ending at ``step``) was non-finite."""
        if filled == 0:
            return
        window = ring[:filled]
        bad_rows = ~torch.isfinite(window).all(dim=1)
        if self.dist.enabled:
            idx = torch.arange(filled, device=ring.device, dtype=torch.float64)
            first = torch.where(bad_rows, idx, torch.full_like(idx, math.inf)).min().reshape(1)
            ddp.all_reduce_min(first, self.dist)
            first_bad = first.item()
            if math.isinf(first_bad):
                return
            bad = int(first_bad)
        else:
            if bool(torch.isfinite(window).all()):
                return
            bad = int(bad_rows.nonzero()[0, 0])
        bad_step = step - filled + bad + 1
        values = dict(zip(self._current_keys(ring), window[bad].tolist(), strict=False))
        what = ", ".join(f"{k}={v}" for k, v in values.items() if not math.isfinite(v))
        raise TrainingError(self._divergence_message(bad_step, f"non-finite {what}"))

    def _current_keys(self, ring: Tensor) -> list[str]:
        return list(getattr(self, "_keys", None) or []) or [f"m{i}" for i in range(ring.shape[1])]

    def _divergence_message(self, step: int, what: str) -> str:
        if self.is_main:
            found = latest_checkpoint(self.out_dir)
            kept = (f"the last good checkpoint ({found[0]}) is kept" if found
                    else "no checkpoint had been written")
        else:
            kept = f"rank 0 keeps the last good checkpoint in {self.out_dir}"
        hint = "try a lower lr or grad_clip"
        if self.precision != "32":
            hint += " or precision '32'"
        return f"training stopped at step {step} (epoch {self.epoch + 1}): {what}; {kept}; {hint}"

    def _weights_finite(self) -> bool:
        assert self.model is not None
        flags = [torch.isfinite(p).all() for p in self.model.parameters()]
        return bool(torch.stack(flags).all()) if flags else True

    # ------------------------------------------------------------------ epoch end

    def _evaluate(self, loader: Any) -> dict[str, float]:
        model = self.model
        assert model is not None
        was_training = model.training
        model.eval()
        device, move = self.device, self.device.type != "cpu"
        autocast = self._autocast()
        keys: list[str] | None = None
        acc: Tensor | None = None
        samples = 0
        devices = [device.index or 0] if device.type == "cuda" else []
        with torch.no_grad(), torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed + 7919 * (self.epoch + 1))  # same noise on resume
            if hasattr(loader, "set_epoch"):
                loader.set_epoch(0)
            for raw in loader:
                batch = _as_batch(raw)
                if move:
                    batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()
                             if isinstance(v, Tensor)}
                n = batch["x"].shape[0]
                with autocast() if autocast is not None else contextlib.nullcontext():
                    loss, metrics = model.loss(batch, self.step)
                if keys is None:
                    keys = ["loss", *[k for k in metrics if k != "loss"]]
                    acc = torch.zeros(len(keys), dtype=torch.float64, device=device)
                values = [(loss if k == "loss" else metrics[k]).to(device) for k in keys]
                acc.add_(torch.stack(values).double(), alpha=n)  # type: ignore[union-attr]
                samples += n
        model.train(was_training)
        if acc is None or keys is None:
            return {}
        ddp.all_reduce_sum(acc, self.dist)
        count = torch.tensor([float(samples)], dtype=torch.float64, device=device)
        ddp.all_reduce_sum(count, self.dist)
        out = dict(zip(keys, (acc / max(1.0, count.item())).tolist(), strict=True))
        if not all(math.isfinite(v) for v in out.values()):
            raise TrainingError(self._divergence_message(self.step, f"non-finite validation {out}"))
        return out

    def _end_epoch(self, means: list[float], samples: int, seconds: float, val_loader: Any,
                   elapsed: float) -> dict[str, Any]:
        assert self.optimizer is not None
        complete = self._epoch_complete
        record: dict[str, Any] = {"epoch": self.epoch + (0 if complete else 1), "step": self.step}
        if not complete:
            record["partial_epoch"] = True
        for key, value in zip(self._keys, means, strict=True):
            record[f"train_{key}"] = value
        if val_loader is not None:
            for key, value in self._evaluate(val_loader).items():
                record[f"val_{key}"] = value
        record["lr"] = float(self.optimizer.param_groups[0]["lr"])
        record["samples_per_s"] = samples / seconds if seconds > 0 else 0.0
        record["time"] = seconds
        record["elapsed"] = elapsed
        record["kl_method"] = self._kl_method
        record["world_size"] = self.dist.world_size
        if self.schedule.every == "epoch":
            self.schedule.scheduler.step()
        elif self.schedule.every == "plateau":
            self.schedule.scheduler.step(record.get("val_loss", record["train_loss"]))
        for cb in self.callbacks:
            cb.on_epoch_end(self, record)
        self.history.append(record)
        if self.is_main:
            self._write_metrics()
            if self._tb is not None:
                for key, value in record.items():
                    if isinstance(value, float) and key not in ("elapsed",):
                        self._tb.add_scalar(key.replace("_", "/", 1), value, self.step)
                self._tb.flush()
            if self._progress is not None:
                loss = record["train_loss"]
                extra = f"  val_loss {record['val_loss']:.4f}" if "val_loss" in record else ""
                self._progress.close(self.epoch, self.epochs, self._batch,
                                     self._batches_per_epoch, record["samples_per_s"], loss, extra)
        return record

    def _write_metrics(self) -> None:
        text = "".join(json.dumps(r, sort_keys=False) + "\n" for r in self.history)
        write_text(self.out_dir / "metrics.jsonl", text)

    # ------------------------------------------------------------------ checkpoints

    def _checkpoint(self, batch: int, finished: bool = False,
                    partial: dict[str, Any] | None = None) -> None:
        """Write a checkpoint (rank 0) if the weights are finite; every rank takes part."""
        assert self.model is not None and self.optimizer is not None
        if not self._weights_finite():
            raise TrainingError(self._divergence_message(self.step, "non-finite weights"))
        rng = ddp.gather_objects(capture_rng(), self.dist)
        partials = ddp.gather_objects(partial, self.dist) if batch else None
        rng_start = ddp.gather_objects(self._epoch_rng_start if batch else None, self.dist)
        if not self.is_main:
            return
        state = {
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else {},
            "position": {"epoch": self.epoch, "batch": batch, "step": self.step},
            "rng": rng,
            "rng_epoch_start": rng_start if batch else None,
            "partial": partials,
            "history": self.history,
            "callbacks": [
                {"class": type(cb).__name__, "state": cb.state_dict()} for cb in self.callbacks
            ],
            "stopped": self.should_stop,
            "stop_reason": self.stop_reason,
            "finished": finished,
            "config": self.config(),
            "model_spec": json.dumps(getattr(self.model, "spec", {}) or {}),
        }
        save_checkpoint(self.out_dir, state, keep=self.keep_checkpoints)

    def _own_partial(self, partials: Any) -> dict[str, Any] | None:
        """This rank's metric sums of the interrupted epoch (from the per-rank list saved).

        With another number of ranks than at save time, rank 0 takes the sums of all and the
        others start from zero, so the epoch's totals stay exact.
        """
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

    def _restore_rank_rng(self, states: Any) -> None:
        if not states:
            return
        if len(states) != self.dist.world_size:
            if self.dist.is_main:
                warnings.warn(
                    f"checkpoint was written by {len(states)} process(es), resuming with "
                    f"{self.dist.world_size}: random streams are reseeded", stacklevel=3,
                )
            seed_everything(self.seed + self.dist.rank + 104729 * self.step)
            return
        restore_rng(states[self.dist.rank])

    def _load_state(self, state: dict[str, Any]) -> None:
        assert self.model is not None and self.optimizer is not None
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.schedule.load_state_dict(state.get("scheduler") or {})
            if self.scaler is not None and state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
        except (RuntimeError, ValueError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TrainingError(
                f"{self.out_dir}: the checkpoint does not fit this model/optimizer ({first})"
            ) from None
        pos = state["position"]
        self.step, self.epoch = int(pos["step"]), int(pos["epoch"])
        self.history = [dict(r) for r in state.get("history") or []]
        saved = state.get("callbacks") or []
        for cb, entry in zip(self.callbacks, saved, strict=False):
            if entry.get("class") == type(cb).__name__:
                cb.load_state_dict(dict(entry.get("state") or {}))
        self.should_stop = bool(state.get("stopped", False))
        self.stop_reason = state.get("stop_reason")
        self._batch = int(pos["batch"])

    def _save_model(self) -> None:
        assert self.model is not None
        if getattr(self.model, "spec", None):
            self.model.save(self.out_dir / "model")
        else:  # a bare nn.Module with a loss: weights only
            from ..atomic import atomic_path

            (self.out_dir / "model").mkdir(parents=True, exist_ok=True)
            with atomic_path(self.out_dir / "model" / "weights.pt") as tmp:
                torch.save({k: v.detach().cpu() for k, v in self.model.state_dict().items()}, tmp)


def _kl_method(model: nn.Module) -> str | None:
    """How the model computes its KL term, if it says (``analytic`` / ``monte_carlo``)."""
    for owner in (model, getattr(model, "objective_config", None)):
        value = getattr(owner, "kl_method", None)
        if isinstance(value, str):
            return value
    return None
