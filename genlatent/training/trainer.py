"""The training loop: ``genlatent.Trainer(...).fit(model, train, val)``.

The Trainer is the loop; each other job has its own module (docs/training.md has the table):
options :mod:`.config`, run folder :mod:`.runfolder` and :mod:`.runlock`, checkpoints
:mod:`.checkpoint` and :mod:`.state`, batches :mod:`.batches`, metric sums :mod:`.metrics`,
stops :mod:`.stopping`, files :mod:`.outputs`, progress :mod:`.progress`, DDP :mod:`.distributed`.

How the loop costs (almost) nothing per step: metrics are summed on the device and read back
once per epoch (and when the progress line is redrawn); each step's metrics also go into a
small on-device ring of ``check_every`` rows checked for non-finite values once per
``check_every`` steps, before every checkpoint and at the end of each epoch (the first bad
row names the step); weights are checked before a checkpoint is written, so a good checkpoint
is never replaced by a broken one.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import TrainingError
from . import distributed as ddp
from .batches import LossStep, epoch_batches, make_loader, training_loss
from .callbacks import Callback, EarlyStopping, make_callback
from .checkpoint import capture_rng, save_checkpoint, seed_everything
from .config import PRECISIONS, TrainerConfig, resolve_device
from .metrics import MetricSums, divergence_message, first_non_finite, weights_finite
from .optim import Schedule, make_optimizer, make_schedule
from .outputs import RunOutputs
from .progress import Progress, kl_line, kl_method_of, say
from .runlock import RunLock
from .state import ResumeState, checkpoint_payload
from .stopping import INTERRUPTED, MAX_TIME, StopRequests, budget_note, interrupted_error

__all__ = ["PRECISIONS", "Trainer", "resolve_device"]


class Trainer:
    """Fits a :class:`~genlatent.models.base.LatentModel` (anything with ``loss(batch, step)``).

    Args:
        epochs: passes over the training data (``None``: until ``max_steps``).
        max_steps: stop after this many optimiser steps (may end mid-epoch).
        max_time: a time budget for the run, in seconds or as ``"90s"``, ``"30m"``,
            ``"1h30m"``: at the first step past it the fit stops as at its end (checkpoint,
            model saved, ``stop_reason: "max_time"`` in the metrics); a later ``resume=True``
            with a larger budget (or more epochs) goes on. Resumed fits count their time.
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
            (off by default: each is a device sync; the trainer checks for non-finite values).
    """

    def __init__(
        self,
        *,
        epochs: int | None = 10,
        max_steps: int | None = None,
        max_time: float | str | None = None,
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
        arguments = dict(locals())
        del arguments["self"], arguments["callbacks"]
        self.options = TrainerConfig(**arguments)
        self.callbacks: list[Callback] = [make_callback(c) for c in callbacks]
        if patience is not None:
            self.callbacks.insert(0, EarlyStopping(patience=patience))
        # the run, set by fit
        self.model: nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.schedule: Schedule = Schedule(None)
        self.scaler: torch.amp.GradScaler | None = None
        self.dist = ddp.DistInfo()
        self.device = torch.device("cpu")
        self.step = 0  # optimiser steps done in the run
        self.epoch = 0  # epochs completed
        self.history: list[dict[str, Any]] = []  # one record per epoch (metrics.jsonl)
        self.should_stop = False  # set by a callback: stop after this epoch
        self.stop_reason: str | None = None
        # the epoch in progress
        self.batch = 0  # batches of the epoch done
        self.epoch_complete = False  # the last epoch ran to the end of the data
        self.epoch_rng_start: dict[str, Any] | None = None  # RNG at its start (for resume)
        self.epoch_sums: MetricSums | None = None  # its metric sums (this rank)
        self.epoch_seconds = 0.0  # its training time, before the current fit included
        self.batches_per_epoch: int | None = None
        # the fit's machinery
        self._loss_fn: Any = None
        self._loss_step = LossStep(self.device, None)
        self._step_callbacks: list[Callback] = []
        self._outputs = RunOutputs(self.options.out_dir, False, self.options.tensorboard)
        self._progress: Progress | None = None
        self._kl_method: str | None = None
        self._stop = StopRequests()  # signals and the time budget, made by fit
        self._prior_seconds = 0.0  # fitting time of the run before this fit
        self._fit_start = 0.0

    # ------------------------------------------------------------------ public

    @property
    def is_main(self) -> bool:
        """True on the process that writes files (rank 0, or the only process)."""
        return self.dist.is_main

    # the options callbacks read most, as before the options moved to ``self.options``
    out_dir = property(lambda self: self.options.out_dir, doc="The run folder.")
    epochs = property(lambda self: self.options.epochs, doc="Epochs to train (or None).")
    max_steps = property(lambda self: self.options.max_steps, doc="Step limit (or None).")
    seed = property(lambda self: self.options.seed, doc="The run's seed.")
    batch_size = property(lambda self: self.options.batch_size, doc="Examples per step.")

    def config(self) -> dict[str, Any]:
        """The trainer's options as plain JSON (recorded in checkpoints and trainer.json)."""
        return {**self.options.to_json(), "world_size": self.dist.world_size}

    def fit(self, model: nn.Module, train: Any, val: Any | None = None) -> dict[str, Any]:
        """Train ``model`` on ``train`` (a loader or an ``H5Dataset``); return the last epoch's
        metrics record. Writes the run folder (rank 0 only) and ``model.save(out_dir/model)``.
        """
        if not callable(getattr(model, "loss", None)):
            raise TrainingError(f"{type(model).__name__} has no loss(batch, step) method")
        device = resolve_device(self.options.device, ddp._env_int("LOCAL_RANK", 0))
        self.dist = ddp.setup(device.type)
        if self.dist.enabled and device.type == "cuda" and str(self.options.device) == "auto":
            device = torch.device("cuda", self.dist.local_rank)
        self.device = device
        if self.options.precision == "fp16" and device.type != "cuda":
            raise TrainingError("precision 'fp16' needs a CUDA device; use 'bf16' or '32'")
        lock = RunLock(self.out_dir) if self.is_main else None
        validate = torch.distributions.Distribution._validate_args
        self._stop = StopRequests(dist=self.dist, every=self.options.check_every, device=device)
        if not self.dist.enabled:  # under torchrun, signals stay torchrun's (it stops/restarts)
            self._stop.install()
        try:
            if lock is not None:
                lock.acquire()
            # Argument validation of torch/Pyro distributions costs a host-device sync per
            # distribution made (``if not valid.all()``); non-finite values are caught by the
            # trainer's own checks instead.
            torch.distributions.Distribution.set_default_validate_args(
                self.options.validate_distributions
            )
            return self._fit_locked(model, train, val)
        finally:
            self._stop.restore()
            torch.distributions.Distribution.set_default_validate_args(validate)
            if lock is not None:
                lock.release()

    # ------------------------------------------------------------------ setup

    def _fit_locked(self, model: nn.Module, train: Any, val: Any | None) -> dict[str, Any]:
        resume = ResumeState.open(self.out_dir, self.options, self.dist)
        if self.options.resume and self.is_main:
            say(resume.describe(self.out_dir) if resume is not None
                else f"resuming {self.out_dir}: nothing to resume, starting afresh")
        seed_everything(self.seed + self.dist.rank)
        self.model = model
        model.to(self.device)
        model.train()
        options = self.options
        train_loader = make_loader(train, options, self.dist, train=True)
        val_loader = make_loader(val, options, self.dist, train=False) if val is not None else None
        try:
            self.batches_per_epoch = len(train_loader)
        except TypeError:
            self.batches_per_epoch = None
        total_steps = options.max_steps or (options.epochs or 1) * (self.batches_per_epoch or 1)
        self.optimizer = make_optimizer(
            options.optimizer, [p for p in model.parameters() if p.requires_grad],
            options.lr, options.weight_decay, **options.optimizer_options,
        )
        self.schedule = make_schedule(
            options.scheduler, self.optimizer, total_steps, **dict(options.scheduler_options)
        )
        self.scaler = torch.amp.GradScaler("cuda") if options.precision == "fp16" else None
        self.step, self.epoch, self.history = 0, 0, []
        self.should_stop, self.stop_reason = False, None
        self._prior_seconds = resume.seconds if resume is not None else 0.0
        self._fit_start = self._stop.clock()
        self._stop.set_budget(options.max_time_seconds, self._prior_seconds)
        if resume is not None:
            resume.check_model(model, self.out_dir)
            resume.restore(self)
            changed = resume.changed_options(self.config())
            if changed and self.is_main:
                warnings.warn(f"resuming {self.out_dir} with {', '.join(changed)}: the run will "
                              "not match an uninterrupted one exactly", stacklevel=3)
        self._loss_fn = training_loss(model, options, self.dist, self.device)
        self._loss_step = LossStep(self.device, options.autocast_dtype)
        self._outputs = RunOutputs(self.out_dir, self.is_main, options.tensorboard)
        self._progress = None
        if options.progress and self.is_main:
            self._progress = Progress.for_run(options, self.step, self.batches_per_epoch,
                                              self._prior_seconds)
        self._kl_method = kl_method_of(model)
        if self.is_main and (line := kl_line(model)) is not None:
            say(line)
        self._outputs.start(self.config(), self.history)
        for cb in self.callbacks:
            cb.on_fit_start(self)
        self._step_callbacks = [
            cb for cb in self.callbacks if type(cb).on_step_end is not Callback.on_step_end
        ]
        try:
            record = self._loop(train_loader, val_loader, resume)
        finally:
            self._outputs.close()
        for cb in self.callbacks:
            cb.on_fit_end(self)
        ddp.barrier(self.dist)  # every rank leaves once rank 0 has written the model
        return record

    # ------------------------------------------------------------------ the fit

    def run_seconds(self) -> float:
        """Seconds the run has been fitting, earlier fits of a resumed run included."""
        return self._prior_seconds + self._stop.clock() - self._fit_start

    def _done(self) -> bool:
        """Whether the run ends here: a limit reached, or a stop asked for (signal, time)."""
        if self.should_stop:
            return True
        if self.max_steps is not None and self.step >= self.max_steps:
            return True
        if self.epochs is not None and self.epoch >= self.epochs:
            return True
        return self._stop.agreed()

    def _loop(self, train_loader: Any, val_loader: Any, resume: ResumeState | None
              ) -> dict[str, Any]:
        start_batch = resume.batch if resume is not None else 0
        partial = resume.partial_sums() if resume is not None else None
        if resume is not None and start_batch == 0:
            resume.restore_rng()
        last_saved = self.step if resume is not None else -1
        while not self._done():
            if start_batch and resume is not None:
                # Replay the epoch's start: the loader sees the RNG state it saw then, skips
                # the batches already done, and the RNG continues from the checkpoint.
                rng_at_start = resume.restore_epoch_start_rng()
                batches = epoch_batches(train_loader, self.epoch, start_batch)
                resume.restore_rng()
                if self.history and self.history[-1].get("partial_epoch"):
                    self.history.pop()  # an epoch cut short by max_steps: recorded again
            else:
                rng_at_start = capture_rng()
                batches = epoch_batches(train_loader, self.epoch, 0)
            self._train_epoch(batches, start_batch, partial, rng_at_start)
            start_batch, partial = 0, None
            if self.epoch_complete:
                self.epoch += 1
            self._end_epoch(val_loader)
            every = self.options.every_epochs
            due = every is not None and self.epoch % every == 0
            done = self._done()
            if done or (due and self.epoch_complete):
                self._checkpoint(finished=done and self._stop.reason != INTERRUPTED)
                last_saved = self.step
            if not self.epoch_complete:
                break
        if self._stop.reason == INTERRUPTED:
            if self.step and last_saved != self.step:
                self._checkpoint(finished=False)
            raise interrupted_error(self, self._stop)
        if self._stop.reason == MAX_TIME and self.history:
            self._note_stop(self.history[-1])  # also when it ran out at an epoch's end
            self._outputs.write_history(self.history)
            if self.is_main:
                say(budget_note(self))
        if last_saved != self.step:
            self._checkpoint(finished=True)
        self._outputs.save_model(self.model)
        return self.history[-1] if self.history else {}

    # ------------------------------------------------------------------ the hot loop

    def _train_epoch(self, batches: Iterator[Any], start_batch: int,
                     partial: dict[str, Any] | None, rng_at_start: dict[str, Any] | None
                     ) -> None:
        """Train until the data or ``max_steps`` end; leaves the sums in ``epoch_sums``."""
        model, opt = self.model, self.optimizer
        assert model is not None and opt is not None
        model.train()
        options = self.options
        forward, loss_fn = self._loss_step, self._loss_fn
        zero_grad, opt_step = opt.zero_grad, opt.step
        sched_step = self.schedule.scheduler.step if self.schedule.every == "step" else None
        scaler, clip = self.scaler, options.grad_clip
        params = [p for g in opt.param_groups for p in g["params"]]
        clip_norm = torch.nn.utils.clip_grad_norm_
        check_every, every_steps = options.check_every, options.every_steps
        max_steps = options.max_steps if options.max_steps is not None else -1
        progress, step_callbacks = self._progress, self._step_callbacks
        total = self.batches_per_epoch
        stop_after = self._stop.after_step

        sums = self.epoch_sums = MetricSums(self.device, partial)
        prior_seconds = sums.prior_seconds
        rows: list[Tensor] = []
        ring: Tensor | None = None
        keys: list[str] = []
        filled = 0  # rows of the ring written since the last check
        self.batch = start_batch
        self.epoch_complete = False
        self.epoch_rng_start = rng_at_start
        if progress is not None:
            progress.start_epoch(self.epoch + 1, self.epochs, total, start_batch)
        t0 = time.perf_counter()
        exhausted = True
        for raw in batches:
            n, loss, metrics = forward(raw, loss_fn, self.step)
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
            if ring is None:  # first step: fix the metric layout, allocate the ring
                keys = sums.layout(metrics, grad_norm=norm is not None)
                ring = torch.zeros(check_every, len(keys), device=self.device)
                rows = list(ring.unbind(0))
            row = rows[filled]
            row.copy_(sums.row(loss, metrics, norm))
            sums.add(row, n)
            filled += 1
            self.step += 1
            self.batch += 1
            step = self.step
            if filled == check_every:
                self._check_finite(ring, filled, keys)
                filled = 0
            if every_steps is not None and step % every_steps == 0:
                self._check_finite(ring, filled, keys)
                filled = 0
                self.epoch_seconds = prior_seconds + time.perf_counter() - t0
                self._checkpoint(finished=False)
            if step_callbacks:
                for cb in step_callbacks:
                    cb.on_step_end(self, step)
            if progress is not None and progress.due():
                rate = sums.samples / max(1e-9, prior_seconds + time.perf_counter() - t0)
                progress.update(self.batch, step, rate, sums.running_mean())
            if step == max_steps or stop_after(step):
                exhausted = total is not None and self.batch >= total
                break
        if ring is not None:
            self._check_finite(ring, filled, keys)
        if sums.keys is None:
            raise TrainingError("the training data yielded no batches")
        self.epoch_complete = exhausted
        self.epoch_seconds = prior_seconds + time.perf_counter() - t0

    # ------------------------------------------------------------------ safety

    def _check_finite(self, ring: Tensor, filled: int, keys: list[str]) -> None:
        """Raise if any of the last ``filled`` steps was non-finite."""
        bad = first_non_finite(ring, filled, self.step, keys, self.dist)
        if bad is not None:
            raise TrainingError(self._divergence_message(bad[0], f"non-finite {bad[1]}"))

    def _divergence_message(self, step: int, what: str) -> str:
        return divergence_message(self.out_dir, self.is_main, step, self.epoch + 1, what,
                                  self.options.precision)

    # ------------------------------------------------------------------ epoch end

    def _evaluate(self, loader: Any) -> dict[str, float]:
        model = self.model
        assert model is not None
        was_training = model.training
        model.eval()
        sums = MetricSums(self.device)
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.no_grad(), torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed + 7919 * (self.epoch + 1))  # same noise on resume
            if hasattr(loader, "set_epoch"):
                loader.set_epoch(0)
            for raw in loader:
                n, loss, metrics = self._loss_step(raw, model.loss, self.step)
                sums.layout(metrics)
                sums.add(sums.row(loss, metrics), n)
        model.train(was_training)
        means, _ = sums.means(self.dist)
        if not all(math.isfinite(v) for v in means.values()):
            raise TrainingError(self._divergence_message(self.step,
                                                         f"non-finite validation {means}"))
        return means

    def _note_stop(self, record: dict[str, Any]) -> None:
        """A stop on the time budget is recorded as the run's and the epoch's stop reason."""
        if self._stop.reason == MAX_TIME:
            self.stop_reason = record["stop_reason"] = MAX_TIME

    def _end_epoch(self, val_loader: Any) -> dict[str, Any]:
        assert self.optimizer is not None and self.epoch_sums is not None
        means, samples = self.epoch_sums.means(self.dist)
        seconds = self.epoch_seconds
        record: dict[str, Any] = {"epoch": self.epoch + (0 if self.epoch_complete else 1),
                                  "step": self.step}
        if not self.epoch_complete:
            record["partial_epoch"] = True
        record.update({f"train_{key}": value for key, value in means.items()})
        if val_loader is not None and self._stop.reason != INTERRUPTED:  # Ctrl-C: be quick
            record.update({f"val_{k}": v for k, v in self._evaluate(val_loader).items()})
        record.update(lr=float(self.optimizer.param_groups[0]["lr"]),
                      samples_per_s=samples / seconds if seconds > 0 else 0.0, time=seconds,
                      elapsed=self.run_seconds(), kl_method=self._kl_method,
                      world_size=self.dist.world_size)
        self._note_stop(record)
        if self.schedule.every == "epoch":
            self.schedule.scheduler.step()
        elif self.schedule.every == "plateau":
            self.schedule.scheduler.step(record.get("val_loss", record["train_loss"]))
        for cb in self.callbacks:
            cb.on_epoch_end(self, record)
        self.history.append(record)
        self._outputs.epoch_end(record, self.history)
        if self._progress is not None:
            extra = f"  val_loss {record['val_loss']:.4f}" if "val_loss" in record else ""
            self._progress.close(self.batch, self.step, record["samples_per_s"],
                                 record["train_loss"], extra)
        return record

    # ------------------------------------------------------------------ checkpoints

    def _checkpoint(self, finished: bool) -> None:
        """Write a checkpoint of where the loop is (an epoch's end, or mid-epoch with the
        epoch's sums) on rank 0, if the weights are finite; every rank takes part."""
        if not weights_finite(self.model):
            raise TrainingError(self._divergence_message(self.step, "non-finite weights"))
        mid_epoch = not self.epoch_complete and self.batch > 0
        partial = self.epoch_sums.partial(self.epoch_seconds) if mid_epoch else None
        state = checkpoint_payload(self, self.batch if mid_epoch else 0, finished, partial)
        if state is not None:
            save_checkpoint(self.out_dir, state, keep=self.options.keep_checkpoints)
