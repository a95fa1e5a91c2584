"""Trainer: run folder, metrics, exact resume after SIGKILL, divergence, locks, DDP over Gloo."""

from __future__ import annotations

import inspect
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import genlatent
from genlatent.errors import RegistryError, TrainingError
from genlatent.training.callbacks import Callback
from genlatent.training.checkpoint import capture_rng, latest_checkpoint, restore_rng
from genlatent.training.runlock import RunLock

ROOT = Path(__file__).resolve().parents[1]
ROWS, DIM = 256, 20



def make_model(seed: int = 0) -> torch.nn.Module:
    """The tiny VAE every test trains (MLP 20-16-4, Bernoulli)."""
    torch.manual_seed(seed)
    return genlatent.build({
        "data": {"kind": "vectors", "shape": [DIM]}, "latent_dim": 4,
        "encoder": {"name": "mlp", "params": {"hidden": [16]}},
        "decoder": {"name": "mlp", "params": {"hidden": [16]}},
    })


# The scripts run in subprocesses get the same model (one source of truth).
SETUP = (
    f"import torch, genlatent\ntorch.set_num_threads(1)\nDIM = {DIM}\n\n"
    + inspect.getsource(make_model)
)


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small binary-vector HDF5 file: 256 x 20, uint8 0/1 (read as float 0/1)."""
    path = tmp_path_factory.mktemp("data") / "bits.h5"
    rng = np.random.default_rng(0)
    probs = rng.uniform(0.1, 0.9, size=DIM)
    with h5py.File(path, "w") as f:
        f["x"] = (rng.uniform(size=(ROWS, DIM)) < probs).astype(np.uint8)
    return path


def dataset(path: Path, start: int = 0, stop: int = ROWS) -> genlatent.H5Dataset:
    return genlatent.H5Dataset(path, "x").subset(start, stop)


def state_of(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"weights differ in {different}"


def read_metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def run_script(tmp_path: Path, body: str, *args: str, launcher: list[str] | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess:
    script = tmp_path / "script.py"
    script.write_text(SETUP + textwrap.dedent(body))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, *(launcher or []), str(script), *args]
    # A session of its own, so that on a time-out torchrun's workers are killed with it.
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=env, start_new_session=True) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            pytest.fail(f"{script.name} timed out after {timeout} s: {err[-2000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


# --------------------------------------------------------------------------- basic fit


def test_fit_writes_run_folder_metrics_and_model(tmp_path: Path, data_file: Path) -> None:
    model = make_model()
    run = tmp_path / "run"
    trainer = genlatent.Trainer(epochs=3, batch_size=32, device="cpu", out_dir=run,
                                progress=False, callbacks=["csv_logger"])
    last = trainer.fit(model, dataset(data_file, 0, 192), val=dataset(data_file, 192, ROWS))
    records = read_metrics(run)
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert [r["step"] for r in records] == [6, 12, 18]  # 192 rows / 32 per batch
    for r in records:
        for key in ("train_loss", "train_neg_elbo", "train_reconstruction", "train_kl",
                    "val_loss", "val_neg_elbo", "val_reconstruction", "val_kl",
                    "lr", "samples_per_s", "time"):
            assert isinstance(r[key], float) and math.isfinite(r[key]), key
        assert r["train_neg_elbo"] == pytest.approx(r["train_reconstruction"] + r["train_kl"])
        assert r["kl_method"] == "analytic" and r["lr"] == 1e-3
    assert last == records[-1]
    assert torch.distributions.Distribution._validate_args  # switched off only during fit
    assert records[-1]["train_loss"] < records[0]["train_loss"]
    # the saved model is the trained one
    loaded = genlatent.load(run / "model")
    assert_same_weights(state_of(loaded), state_of(model))
    assert (run / "metrics.csv").read_text().splitlines()[0].startswith("epoch,step,train_loss")
    assert json.loads((run / "trainer.json").read_text())["batch_size"] == 32
    # the checkpoint is plain tensors and data: weights_only reads it
    path, sha = latest_checkpoint(run)
    state = torch.load(path, weights_only=True)
    assert state["position"] == {"epoch": 3, "batch": 0, "step": 18} and state["finished"]


def test_epoch_metrics_equal_weighted_batch_means(tmp_path: Path) -> None:
    """Epoch metrics are sample-weighted means of the per-batch metrics (uneven last batch)."""
    seen: list[tuple[int, float]] = []

    class Fixed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def loss(self, batch, step):
            value = batch["x"].sum(1).mean() + 0 * self.w
            seen.append((batch["x"].shape[0], float(value.detach())))
            return value, {"loss": value.detach()}

    x = torch.arange(10, dtype=torch.float32).reshape(10, 1)
    loader = [{"x": x[:4]}, {"x": x[4:8]}, {"x": x[8:]}]
    out = genlatent.Trainer(epochs=1, device="cpu", out_dir=tmp_path, progress=False,
                            optimizer="sgd").fit(Fixed(), loader)
    assert out["train_loss"] == pytest.approx(sum(n * v for n, v in seen) / 10)  # = 4.5


def test_max_steps_ends_mid_epoch_and_resume_finishes_it(tmp_path: Path, data_file: Path) -> None:
    options = dict(batch_size=32, device="cpu", progress=False)
    run = tmp_path / "run"
    out = genlatent.Trainer(epochs=None, max_steps=5, out_dir=run, **options).fit(
        make_model(), dataset(data_file))
    assert out["step"] == 5 and out["epoch"] == 1 and out["partial_epoch"] is True
    assert torch.load(latest_checkpoint(run)[0], weights_only=True)["position"] == {
        "epoch": 0, "batch": 5, "step": 5}
    # the same max_steps again: nothing to do, nothing lost
    genlatent.Trainer(epochs=None, max_steps=5, out_dir=run, resume=True, **options).fit(
        make_model(), dataset(data_file))
    assert [r["step"] for r in read_metrics(run)] == [5]
    # finish the epoch: the same weights and epoch metrics as one uninterrupted epoch
    resumed = make_model(seed=9)
    genlatent.Trainer(epochs=1, out_dir=run, resume=True, **options).fit(
        resumed, dataset(data_file))
    straight = make_model()
    genlatent.Trainer(epochs=1, out_dir=tmp_path / "straight", **options).fit(
        straight, dataset(data_file))
    assert_same_weights(state_of(resumed), state_of(straight))
    (a,), (b,) = read_metrics(run), read_metrics(tmp_path / "straight")
    assert a["step"] == b["step"] == 8 and a["train_loss"] == b["train_loss"]


# --------------------------------------------------------------------------- exact resume

KILL_SCRIPT = """
import os, signal, sys
from genlatent.training.callbacks import Callback

class KillAt(Callback):
    def on_step_end(self, trainer, step):
        if step == int(sys.argv[3]):
            os.kill(os.getpid(), signal.SIGKILL)

data = genlatent.H5Dataset(sys.argv[1], "x")
genlatent.Trainer(epochs=3, batch_size=32, device="cpu", out_dir=sys.argv[2], progress=False,
                  checkpoint_every=5, callbacks=[KillAt()]).fit(make_model(), data)
"""


def test_resume_after_sigkill_is_bit_identical(tmp_path: Path, data_file: Path) -> None:
    # 8 batches per epoch: checkpoints at steps 5, 10, 15; killed at step 13 (epoch 2,
    # batch 5), after the step-10 checkpoint (epoch 2, batch 2).
    killed = tmp_path / "killed"
    proc = run_script(tmp_path, KILL_SCRIPT, str(data_file), str(killed), "13")
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    state = torch.load(latest_checkpoint(killed)[0], weights_only=True)
    assert state["position"] == {"epoch": 1, "batch": 2, "step": 10}
    assert not (killed / "model").exists()

    options = dict(epochs=3, batch_size=32, device="cpu", progress=False, checkpoint_every=5)
    resumed = make_model(seed=123)  # different initial weights: all must come from the checkpoint
    genlatent.Trainer(out_dir=killed, resume=True, **options).fit(resumed, dataset(data_file))
    straight = make_model()
    genlatent.Trainer(out_dir=tmp_path / "straight", **options).fit(straight, dataset(data_file))

    assert_same_weights(state_of(resumed), state_of(straight))
    assert_same_weights(state_of(genlatent.load(killed / "model")), state_of(straight))
    drop = ("samples_per_s", "time", "elapsed")
    a, b = read_metrics(killed), read_metrics(tmp_path / "straight")
    assert [{k: v for k, v in r.items() if k not in drop} for r in a] == [
        {k: v for k, v in r.items() if k not in drop} for r in b]


def test_resume_finished_run_and_extend_it(tmp_path: Path, data_file: Path) -> None:
    options = dict(batch_size=64, device="cpu", progress=False, out_dir=tmp_path)
    model = make_model()
    genlatent.Trainer(epochs=2, **options).fit(model, dataset(data_file))
    done = state_of(model)
    again = make_model(seed=5)
    out = genlatent.Trainer(epochs=2, resume=True, **options).fit(again, dataset(data_file))
    assert out["epoch"] == 2 and len(read_metrics(tmp_path)) == 2
    assert_same_weights(state_of(again), done)
    more = genlatent.Trainer(epochs=3, resume=True, **options).fit(again, dataset(data_file))
    assert more["epoch"] == 3 and more["step"] == 12 and len(read_metrics(tmp_path)) == 3


def test_rng_state_round_trip() -> None:
    import random

    state = capture_rng()
    first = (random.random(), np.random.rand(), torch.rand(3))
    restore_rng(state)
    again = (random.random(), np.random.rand(), torch.rand(3))
    assert first[0] == again[0] and first[1] == again[1] and torch.equal(first[2], again[2])


def test_resume_refuses_another_model_naming_the_differing_fields(
    tmp_path: Path, data_file: Path
) -> None:
    options = dict(epochs=1, batch_size=64, device="cpu", out_dir=tmp_path, progress=False)
    genlatent.Trainer(**options).fit(make_model(), dataset(data_file))
    spec = make_model().spec
    # the same shapes, another objective and prior: the weights would load without error
    other = genlatent.build({**spec, "prior": {"name": "laplace", "params": {}},
                             "objective": {**spec["objective"], "beta": 0.5}})
    with pytest.raises(TrainingError) as info:
        genlatent.Trainer(**{**options, "epochs": 2}, resume=True).fit(other, dataset(data_file))
    message = str(info.value)
    assert "\n" not in message and "differs from the one in its checkpoint" in message
    assert "objective.beta" in message and "-> 0.5" in message
    assert 'prior.name "standard_normal" -> "laplace"' in message
    assert "latent_dim" not in message  # only what differs is named
    assert read_metrics(tmp_path)[-1]["epoch"] == 1  # nothing was trained or written


# --------------------------------------------------------------------------- safety


def test_diverging_run_stops_and_keeps_good_checkpoint(tmp_path: Path, data_file: Path) -> None:
    model = make_model()
    trainer = genlatent.Trainer(epochs=5, batch_size=32, device="cpu", out_dir=tmp_path,
                                optimizer="sgd", lr=1e6, checkpoint_every=1, check_every=4,
                                progress=False)
    with pytest.raises(TrainingError) as info:
        trainer.fit(model, dataset(data_file))
    message = str(info.value)
    assert "\n" not in message
    assert "training stopped at step" in message and "non-finite loss" in message
    bad_step = int(message.split("at step ")[1].split()[0])
    path, sha = latest_checkpoint(tmp_path)
    assert path.name == f"step-{bad_step - 1:08d}.pt" and str(path) in message
    kept = genlatent.training.checkpoint.load_checkpoint(path, sha)
    assert all(torch.isfinite(v).all() for v in kept["model"].values())
    assert not (tmp_path / "model").exists()


def test_nan_is_located_at_its_step(tmp_path: Path) -> None:
    class NaNAt(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(()))

        def loss(self, batch, step):
            value = (batch["x"] * self.w).pow(2).mean()
            if step == 16:  # the 17th optimiser step
                value = value * float("nan")
            return value, {"loss": value.detach()}

    loader = [{"x": torch.ones(4, 2)}] * 30
    trainer = genlatent.Trainer(epochs=1, device="cpu", out_dir=tmp_path, check_every=10,
                                checkpoint_every=None, progress=False, optimizer="sgd", lr=1e-3)
    with pytest.raises(TrainingError, match=r"at step 17 \(epoch 1\): non-finite loss=nan"):
        trainer.fit(NaNAt(), loader)


def test_run_folder_in_use_is_refused_and_stale_lock_taken_over(
    tmp_path: Path, data_file: Path
) -> None:
    trainer = genlatent.Trainer(epochs=1, batch_size=64, device="cpu", out_dir=tmp_path,
                                progress=False)
    with RunLock(tmp_path), pytest.raises(TrainingError, match="in use by another training"):
        trainer.fit(make_model(), dataset(data_file))
    # a lock file left by a dead process (no flock held) does not block
    (tmp_path / ".lock").write_text("pid 999999 on elsewhere\n")
    trainer.fit(make_model(), dataset(data_file))
    assert read_metrics(tmp_path)[-1]["epoch"] == 1


LOCK_HOLDER = """
import sys, time
from genlatent.training.runlock import RunLock
lock = RunLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(120)
"""


def test_lock_of_a_sigkilled_process_names_it_then_is_taken_over(
    tmp_path: Path, data_file: Path
) -> None:
    run = tmp_path / "run"
    script = tmp_path / "hold.py"
    script.write_text(LOCK_HOLDER)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen([sys.executable, str(script), str(run)], stdout=subprocess.PIPE,
                          text=True, env=env) as holder:
        try:
            assert holder.stdout.readline().strip() == "locked"
            trainer = genlatent.Trainer(epochs=1, batch_size=64, device="cpu", out_dir=run,
                                        progress=False)
            with pytest.raises(TrainingError, match=f"in use by another training "
                                                    f"\\(pid {holder.pid} on "):
                trainer.fit(make_model(), dataset(data_file))
        finally:
            holder.kill()
    assert holder.returncode == -signal.SIGKILL
    trainer.fit(make_model(), dataset(data_file))  # the dead holder's lock is taken over
    assert read_metrics(run)[-1]["epoch"] == 1


def test_existing_run_needs_resume_or_overwrite(tmp_path: Path, data_file: Path) -> None:
    options = dict(epochs=1, batch_size=64, device="cpu", out_dir=tmp_path, progress=False)
    genlatent.Trainer(**options).fit(make_model(), dataset(data_file))
    with pytest.raises(TrainingError, match="already holds a run.*resume=True"):
        genlatent.Trainer(**options).fit(make_model(), dataset(data_file))
    model = make_model(seed=3)
    genlatent.Trainer(overwrite=True, **options).fit(model, dataset(data_file))
    assert_same_weights(state_of(genlatent.load(tmp_path / "model")), state_of(model))


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"precision": "fp8"}, "precision must be"),
        ({"optimizer": "adamm"}, "unknown optimizer 'adamm'"),
        ({"scheduler": "cosin"}, "unknown scheduler 'cosin'"),
        ({"device": "tpu"}, "device must be auto, cpu"),
        ({"precision": "fp16", "device": "cpu"}, "fp16' needs a CUDA device"),
        ({"checkpoint_every": "3 weeks"}, "checkpoint_every must be"),
        ({"epochs": 0}, "epochs must be a positive integer"),
    ],
)
def test_bad_options_are_one_line_errors(tmp_path: Path, options: dict, match: str) -> None:
    with pytest.raises(TrainingError, match=match):
        genlatent.Trainer(out_dir=tmp_path, progress=False, **options).fit(
            make_model(), [{"x": torch.zeros(2, DIM)}])


# --------------------------------------------------------------------------- callbacks


def test_early_stopping_and_named_callbacks(tmp_path: Path) -> None:
    class Flat(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def loss(self, batch, step):
            value = batch["x"].mean() + 0 * self.w  # never improves
            return value, {"loss": value.detach()}

    events: list[str] = []

    class Recorder(Callback):
        def on_fit_start(self, trainer):
            events.append("start")

        def on_epoch_end(self, trainer, metrics):
            events.append(f"epoch{metrics['epoch']}")

        def on_fit_end(self, trainer):
            events.append("end")

    genlatent.registry.callbacks.add("test_recorder", Recorder)
    try:
        loader = [{"x": torch.ones(2, 1)}]
        trainer = genlatent.Trainer(epochs=20, patience=2, device="cpu", out_dir=tmp_path,
                                    progress=False, callbacks=["test_recorder"])
        out = trainer.fit(Flat(), loader)
    finally:
        genlatent.registry.callbacks.unregister("test_recorder")
    assert out["epoch"] == 3 and events == ["start", "epoch1", "epoch2", "epoch3", "end"]
    assert "early stopping" in trainer.stop_reason
    saved = torch.load(latest_checkpoint(tmp_path)[0], weights_only=True)
    assert saved["stopped"] and saved["callbacks"][0]["state"]["bad_epochs"] == 2
    assert {"early_stopping", "csv_logger", "print_metrics"} <= set(
        genlatent.registry.callbacks.names())
    with pytest.raises(RegistryError, match="unknown callback 'nope'"):
        genlatent.Trainer(callbacks=["nope"])


# --------------------------------------------------------------------------- DDP

DDP_SCRIPT = """
import os, sys
data = genlatent.H5Dataset(sys.argv[1], "x")
rank, out, weights = int(os.environ["RANK"]), sys.argv[2], sys.argv[3]
options = dict(batch_size=32, device="cpu", progress=False)

def fit(run, seed, **more):
    model = make_model(seed=seed)  # a different start on every rank: DDP must make them agree
    genlatent.Trainer(out_dir=os.path.join(out, run), **options, **more).fit(model, data)
    return model

straight = fit("straight", rank, epochs=2)
fit("cut", rank, epochs=None, max_steps=3)  # stopped mid-epoch 1, then resumed
resumed = fit("cut", 100 + rank, epochs=2, resume=True)
torch.save(straight.state_dict(), os.path.join(weights, f"straight{rank}.pt"))
torch.save(resumed.state_dict(), os.path.join(weights, f"resumed{rank}.pt"))
"""


def test_two_process_gloo_ddp_ranks_agree_and_resume(tmp_path: Path, data_file: Path) -> None:
    run, weights = tmp_path / "run", tmp_path / "weights"
    weights.mkdir()
    launcher = ["-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone"]
    proc = run_script(tmp_path, DDP_SCRIPT, str(data_file), str(run), str(weights),
                      launcher=launcher, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    load = {name: torch.load(weights / f"{name}.pt", weights_only=True)
            for name in ("straight0", "straight1", "resumed0", "resumed1")}
    assert_same_weights(load["straight0"], load["straight1"])
    # each rank ran 4 batches of its 128-row shard per epoch; metrics cover all 256 rows
    records = read_metrics(run / "straight")
    assert [r["step"] for r in records] == [4, 8] and records[-1]["world_size"] == 2
    assert_same_weights(state_of(genlatent.load(run / "straight" / "model")), load["straight0"])
    # per-rank RNG states and sampler positions: the resumed run ends where the straight one did
    assert_same_weights(load["resumed0"], load["straight0"])
    assert_same_weights(load["resumed1"], load["straight0"])
    drop = ("samples_per_s", "time", "elapsed")
    assert [{k: v for k, v in r.items() if k not in drop} for r in read_metrics(run / "cut")] == [
        {k: v for k, v in r.items() if k not in drop} for r in records]


# --------------------------------------------------------------------------- options


def test_cosine_schedule_grad_clip_and_bf16_autocast(tmp_path: Path, data_file: Path) -> None:
    trainer = genlatent.Trainer(epochs=2, batch_size=64, device="cpu", out_dir=tmp_path,
                                progress=False, scheduler="cosine", grad_clip=1.0,
                                precision="bf16", optimizer="adamw", weight_decay=0.01)
    records = (trainer.fit(make_model(), dataset(data_file)), read_metrics(tmp_path))[1]
    assert records[0]["lr"] == pytest.approx(1e-3 * (1 + math.cos(math.pi * 4 / 8)) / 2)
    assert records[1]["lr"] == pytest.approx(0.0, abs=1e-12)  # annealed to min_lr over 8 steps
    assert all(0 < r["train_grad_norm"] < 1e4 for r in records)
    assert all(math.isfinite(r["train_loss"]) for r in records)


def test_plateau_schedule_steps_on_validation_loss(tmp_path: Path) -> None:
    class Flat(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def loss(self, batch, step):
            value = batch["x"].mean() + 0 * self.w
            return value, {"loss": value.detach()}

    loader = [{"x": torch.ones(2, 1)}]
    genlatent.Trainer(epochs=4, device="cpu", out_dir=tmp_path, progress=False, lr=1.0,
                      scheduler="plateau", scheduler_options={"patience": 1, "factor": 0.5}
                      ).fit(Flat(), loader, val=loader)
    # the lr each epoch ran with: halved after two epochs without improvement (patience 1)
    assert [r["lr"] for r in read_metrics(tmp_path)] == [1.0, 1.0, 1.0, 0.5]


def test_progress_line_and_print_metrics(tmp_path: Path) -> None:
    import io

    from genlatent.training.callbacks import PrintMetrics
    from genlatent.training.progress import Progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    now = [100.0]
    term = Terminal()
    bar = Progress(stream=term, interval=0.0, clock=lambda: now[0])
    bar.start_run(step=0, total_steps=200)
    bar.start_epoch(2, 5, 40)
    assert bar.due()
    now[0] += 5.0
    bar.update(10, 50, 12345.0, 3.25)
    now[0] += 15.0
    bar.close(40, 80, 12000.0, 3.0, "  val_loss 2.9000")
    text = term.getvalue()
    assert "\repoch 2/5 [#####" in text and "10/40  12,345 samples/s  loss 3.2500" in text
    assert "epoch 0:05<0:15  run 0:05<0:15" in text  # 10 of 40 batches, 50 of 200 steps
    assert text.endswith("40/40  12,000 samples/s  loss 3.0000  epoch 0:20<0:00  "
                         "run 0:20<0:30  val_loss 2.9000\n")

    out = io.StringIO()
    model = make_model()
    genlatent.Trainer(epochs=2, device="cpu", out_dir=tmp_path, progress=False,
                      callbacks=[PrintMetrics(stream=out)]).fit(
        model, [{"x": torch.ones(4, DIM)}], val=[{"x": torch.zeros(4, DIM)}])
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[1].startswith("epoch 2  step 2  train_loss ")
    assert "val_loss" in lines[1] and "samples/s" in lines[1]


def test_resume_refuses_a_tampered_checkpoint_and_warns_on_changed_order(
    tmp_path: Path, data_file: Path
) -> None:
    options = dict(epochs=1, device="cpu", out_dir=tmp_path, progress=False)
    genlatent.Trainer(batch_size=64, **options).fit(make_model(), dataset(data_file))
    with pytest.warns(UserWarning, match="batch_size 64 -> 32"):
        genlatent.Trainer(batch_size=32, resume=True, **options).fit(
            make_model(), dataset(data_file))
    path, _ = latest_checkpoint(tmp_path)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(genlatent.CheckpointError, match="checksum does not match"):
        genlatent.Trainer(batch_size=32, resume=True, **options).fit(
            make_model(), dataset(data_file))
