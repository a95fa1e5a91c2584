"""Stopping a fit safely: SIGINT / SIGTERM at a safe point (in-process and through the CLI),
a second Ctrl-C, the time budget ``max_time``, and rerunning a folder with nothing trained."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from test_trainer import DIM, ROWS, make_model, read_metrics  # the same tiny VAE and files

import genlatent
from genlatent.data import write_h5
from genlatent.errors import TrainingInterrupted
from genlatent.training.callbacks import Callback
from genlatent.training.checkpoint import latest_checkpoint, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "bits.h5"
    rng = np.random.default_rng(0)
    write_h5(path, (rng.random((ROWS, DIM)) < 0.3).astype(np.float32),
             attrs={"kind": "vectors"})
    return path


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class SignalAt(Callback):
    """Sends ``signum`` to this process ``times`` times after step ``step``."""

    def __init__(self, step: int, signum: int = signal.SIGINT, times: int = 1) -> None:
        self.at, self.signum, self.times = step, signum, times

    def on_step_end(self, trainer, step):
        if step == self.at:
            for _ in range(self.times):
                os.kill(os.getpid(), self.signum)


OPTIONS = dict(epochs=3, batch_size=32, device="cpu", progress=False)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_after_the_step_checkpoints_and_resume_matches(
    tmp_path: Path, data_file: Path, signum: int
) -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    run = tmp_path / "run"
    data = genlatent.H5Dataset(data_file, "x")
    with pytest.raises(TrainingInterrupted) as info:
        genlatent.Trainer(out_dir=run, callbacks=[SignalAt(11, signum)], **OPTIONS).fit(
            make_model(), data)
    stop = info.value
    # 8 batches per epoch: step 11 is batch 3 of epoch 2; it stopped right after it
    assert (stop.epoch, stop.step) == (2, 11) and stop.out_dir == str(run)
    assert stop.checkpoint == str(latest_checkpoint(run)[0])
    assert signal.Signals(signum).name in str(stop) and "\n" not in str(stop)
    state = load_checkpoint(*latest_checkpoint(run))
    assert state["position"] == {"epoch": 1, "batch": 3, "step": 11}
    assert not (run / "model").exists()  # not a finished run
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before

    resumed = make_model(seed=7)
    genlatent.Trainer(out_dir=run, resume=True, **OPTIONS).fit(resumed, data)
    straight = make_model()
    genlatent.Trainer(out_dir=tmp_path / "straight", **OPTIONS).fit(straight, data)
    a, b = weights(resumed), weights(straight)
    assert all(torch.equal(a[k], b[k]) for k in a)
    drop = ("samples_per_s", "time", "elapsed")
    assert [{k: v for k, v in r.items() if k not in drop} for r in read_metrics(run)] == [
        {k: v for k, v in r.items() if k not in drop} for r in read_metrics(tmp_path / "straight")]


def test_second_ctrl_c_aborts_at_once_and_keeps_the_last_checkpoint(
    tmp_path: Path, data_file: Path
) -> None:
    before = signal.getsignal(signal.SIGINT)
    data = genlatent.H5Dataset(data_file, "x")
    with pytest.raises(KeyboardInterrupt):
        genlatent.Trainer(out_dir=tmp_path, checkpoint_every=4, callbacks=[SignalAt(6, times=2)],
                          **OPTIONS).fit(make_model(), data)
    assert signal.getsignal(signal.SIGINT) == before
    state = load_checkpoint(*latest_checkpoint(tmp_path))  # checksum verified
    assert state["position"]["step"] == 4
    assert not (tmp_path / ".lock.owner").exists()  # the lock was released


def test_interrupt_before_anything_trained_leaves_a_folder_a_plain_rerun_takes(
    tmp_path: Path, data_file: Path
) -> None:
    class SignalAtStart(Callback):
        def on_fit_start(self, trainer):
            os.kill(os.getpid(), signal.SIGINT)

    data = genlatent.H5Dataset(data_file, "x")
    with pytest.raises(TrainingInterrupted, match="before the first step; nothing was trained"
                       ) as info:
        genlatent.Trainer(out_dir=tmp_path, callbacks=[SignalAtStart()], **OPTIONS).fit(
            make_model(), data)
    assert info.value.checkpoint is None and info.value.step == 0
    assert latest_checkpoint(tmp_path) is None and not (tmp_path / "model").exists()
    (tmp_path / "config.json").write_text("{}")  # as the CLI leaves it
    assert {p.name for p in tmp_path.iterdir()} >= {"metrics.jsonl", "trainer.json", ".lock"}
    # a plain rerun (no resume, no overwrite) is not refused: it clears the leftovers
    out = genlatent.Trainer(out_dir=tmp_path, **OPTIONS).fit(make_model(), data)
    assert out["epoch"] == 3 and not (tmp_path / "config.json").exists()
    assert [r["epoch"] for r in read_metrics(tmp_path)] == [1, 2, 3]


def test_resume_says_where_it_resumes_from(tmp_path: Path, data_file: Path, capsys) -> None:
    data = genlatent.H5Dataset(data_file, "x")
    genlatent.Trainer(out_dir=tmp_path, resume=True, **{**OPTIONS, "epochs": 1}).fit(
        make_model(), data)
    assert f"resuming {tmp_path}: nothing to resume, starting afresh\n" in capsys.readouterr().err
    genlatent.Trainer(out_dir=tmp_path, resume=True, **OPTIONS).fit(make_model(), data)
    err = capsys.readouterr().err
    assert f"resuming {tmp_path} from epoch 2, step 8 (checkpoints/step-00000008.pt)\n" in err


# --------------------------------------------------------------------------- the CLI


def _cli(*args: str, **popen: object) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "genlatent.cli.main", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=ROOT, **popen)


def test_ctrl_c_in_genlatent_train_prints_the_resume_command_that_finishes(
    tmp_path: Path
) -> None:
    rng = np.random.default_rng(1)
    data = tmp_path / "vec.h5"
    write_h5(data, (rng.random((2000, 12)) < 0.3).astype(np.float32), attrs={"kind": "vectors"})
    run = tmp_path / "run"
    args = ["train", data, "--epochs", "20", "--batch-size", "32", "--latent-dim", "2",
            "--device", "cpu", "--set", "train.checkpoint_every=10", "--set", "encoder.hidden=[8]",
            "--set", "decoder.hidden=[8]", "--no-plots", "--out", run, "--overwrite"]
    proc = _cli(*args)
    try:
        deadline = time.monotonic() + 120
        while not (run / "checkpoints" / "latest.json").exists():
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-2000:]
    line = err.strip().splitlines()[-1]
    assert line.startswith("Interrupted at epoch ") and "Traceback" not in err, err[-2000:]
    step = int(line.split(", step ")[1].split(":")[0])
    kept, command = line.split(": kept ")[1].split("; continue with: ")
    assert Path(kept) == latest_checkpoint(run)[0] and Path(kept).name == f"step-{step:08d}.pt"
    assert load_checkpoint(*latest_checkpoint(run))["position"]["step"] == step
    assert not (run / "model").exists()
    words = shlex.split(command)
    assert words[0] == "genlatent" and words[-1] == "--resume" and "--overwrite" not in words
    assert words[1:-1] == [str(a) for a in args if a != "--overwrite"]

    again = _cli(*words[1:])
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err[-2000:]
    assert f"resuming {run} from epoch " in err and f"step {step} (" in err
    assert read_metrics(run)[-1]["epoch"] == 20 and (run / "model").is_dir()


# --------------------------------------------------------------------------- max_time


class FakeClock(Callback):
    """The run's clock, advanced by one second per optimiser step (no real waiting)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def on_step_end(self, trainer, step):
        self.now += 1.0


def test_max_time_stops_like_an_end_and_resume_with_more_goes_on(
    tmp_path: Path, data_file: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    clock = FakeClock()
    monkeypatch.setattr("genlatent.training.stopping.CLOCK", clock)
    data = genlatent.H5Dataset(data_file, "x")
    run = tmp_path / "run"
    out = genlatent.Trainer(out_dir=run, max_time="10.5s", callbacks=[clock], **OPTIONS).fit(
        make_model(), data)
    # past 10.5 s after step 11 (batch 3 of epoch 2): stopped there, as at an end
    assert out["stop_reason"] == "max_time" and out["step"] == 11 and out["partial_epoch"]
    assert read_metrics(run)[-1] == out
    assert load_checkpoint(*latest_checkpoint(run))["position"] == {
        "epoch": 1, "batch": 3, "step": 11}
    assert (run / "model").is_dir()
    assert "time budget max_time=10.5s spent at epoch 2, step 11: checkpoint and model saved" in (
        capsys.readouterr().err)
    # the same budget again: spent already, nothing more is trained
    again = genlatent.Trainer(out_dir=run, resume=True, max_time=10.5, callbacks=[clock],
                              **OPTIONS).fit(make_model(), data)
    assert again["step"] == 11 and again["stop_reason"] == "max_time"
    # a larger budget goes on (fits count the run's time: 11 s spent, 9 s more -> step 20)
    more = genlatent.Trainer(out_dir=run, resume=True, max_time="20s", callbacks=[clock],
                             **OPTIONS).fit(make_model(), data)
    assert more["step"] == 20 and more["stop_reason"] == "max_time"
    # no budget: the run finishes, as an uninterrupted one does
    resumed = make_model(seed=5)
    last = genlatent.Trainer(out_dir=run, resume=True, callbacks=[clock], **OPTIONS).fit(
        resumed, data)
    assert last["step"] == 24 and "stop_reason" not in last
    straight = make_model()
    genlatent.Trainer(out_dir=tmp_path / "straight", **OPTIONS).fit(straight, data)
    a, b = weights(resumed), weights(straight)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["epoch"] for r in read_metrics(run)] == [1, 2, 3]


def test_max_time_set_through_the_cli(tmp_path: Path, data_file: Path) -> None:
    from click.testing import CliRunner

    from genlatent.cli.main import cli

    def train(*args: str):
        return CliRunner().invoke(cli, ["train", str(data_file), "--out", str(tmp_path / "r"),
                                        "--print-config", *args])

    done = train("--set", "train.max_time=30m")
    assert done.exit_code == 0, done.stderr
    assert json.loads(done.stdout)["config"]["train"]["max_time"] == "30m"
    bad = train("--set", "train.max_time=soon")
    assert bad.exit_code == 2 and "max_time must be seconds or a duration" in bad.stderr


DDP_BUDGET = """
import os, sys
import torch, genlatent
import genlatent.training.stopping as stopping
from genlatent.training.callbacks import Callback

torch.set_num_threads(1)
rank = int(os.environ["RANK"])


class Clock(Callback):  # rank 1's clock runs twice as fast: the ranks must still agree
    now = 0.0

    def __call__(self):
        return self.now

    def on_step_end(self, trainer, step):
        self.now += 1.0 + rank


clock = stopping.CLOCK = Clock()
torch.manual_seed(rank)
model = genlatent.build({"data": {"kind": "vectors", "shape": [20]}, "latent_dim": 4,
                         "encoder": {"name": "mlp", "params": {"hidden": [16]}},
                         "decoder": {"name": "mlp", "params": {"hidden": [16]}}})
out = genlatent.Trainer(epochs=3, batch_size=32, device="cpu", progress=False, check_every=2,
                        max_time=5.5, out_dir=sys.argv[2], callbacks=[clock]).fit(
    model, genlatent.H5Dataset(sys.argv[1], "x"))
# a file per rank: both ranks share torchrun's stdout, where lines can be lost or mixed
with open(f"{sys.argv[2]}.rank{rank}", "w") as f:
    f.write(f"RESULT {rank} {out['step']} {out.get('stop_reason')}\\n")
"""


def test_max_time_under_ddp_every_rank_stops_at_the_same_step(
    tmp_path: Path, data_file: Path
) -> None:
    script = tmp_path / "budget.py"
    script.write_text(DDP_BUDGET)
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--standalone", str(script), str(data_file), str(tmp_path / "run")]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=env, start_new_session=True) as proc:
        try:
            out, err = proc.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            pytest.fail(f"timed out: {err[-2000:]}")
    assert proc.returncode == 0, err[-3000:]
    results = sorted((tmp_path / f"run.rank{r}").read_text().split()[1:] for r in (0, 1))
    # rank 1 runs out after step 3, rank 0 after step 6: both stop at the sync of step 4
    assert results == [["0", "4", "max_time"], ["1", "4", "max_time"]]
    assert load_checkpoint(*latest_checkpoint(tmp_path / "run"))["position"]["step"] == 4
