"""Same command, same model: seeded runs checked in fresh processes.

The autouse fixture in conftest.py seeds only this test process, so every claim here is made
by separate ``genlatent`` processes (or, for the Python API, after scrambling this process's
RNGs): nothing can be masked by a seed set somewhere else.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import genlatent
from genlatent.data import write_h5

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
TIMEOUT = 600
# 58 training rows / 16 = 4 steps per epoch, 12 epochs = 48 steps, a checkpoint every 3 steps
# (mid-epoch ones included), dropout on: every RNG the loop uses is exercised.
TRAIN_ARGS = ["--encoder", "mlp", "--decoder", "mlp", "--set", "encoder.hidden=[16]",
              "--set", "decoder.hidden=[16]", "--set", "encoder.dropout=0.2",
              "--latent-dim", "3", "--epochs", "12", "--batch-size", "16",
              "--set", "train.checkpoint_every=3", "--set", "train.progress=false",
              "--no-plots"]


def command(*args: object) -> list[str]:
    return [sys.executable, "-m", "genlatent.cli.main", *map(str, args)]


def genlatent_run(*args: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command(*args), capture_output=True, text=True, timeout=TIMEOUT,
                          env=ENV, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done


def digest(run: Path) -> str:
    return hashlib.sha256((run / "model" / "weights.pt").read_bytes()).hexdigest()


def read_h5(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in f}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Five training processes of one command: seed 1 twice, seed 2, and seed 1 SIGKILLed
    after its first checkpoint then continued with --resume."""
    folder = tmp_path_factory.mktemp("repro")
    rng = np.random.default_rng(5)
    x = (rng.random((64, 12)) < 0.3).astype(np.float32)
    data = folder / "vec.h5"
    write_h5(data, x, attrs={"kind": "vectors"})
    out = {name: folder / name for name in ("a", "b", "c", "killed")}

    def start(name: str, seed: int, *extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            command("train", data, *TRAIN_ARGS, "--seed", seed, "--out", out[name], *extra),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=ROOT)

    killed = start("killed", 1)
    latest = out["killed"] / "checkpoints" / "latest.json"
    deadline = time.monotonic() + TIMEOUT
    while not latest.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert killed.poll() is None, "the run ended before it could be killed"
    killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=TIMEOUT)
    stopped_at = json.loads(latest.read_text())
    assert not (out["killed"] / "model").exists()  # it really stopped mid-run
    others = [start("a", 1), start("b", 1), start("c", 2)]
    resumed = start("killed", 1, "--resume")
    for proc in [*others, resumed]:
        _, err = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 0, err
    out["data"] = data
    out["stopped_at"] = stopped_at  # type: ignore[assignment]
    return out


def test_same_seed_same_weights_other_seed_other_weights(runs) -> None:
    assert digest(runs["a"]) == digest(runs["b"])
    assert digest(runs["a"]) != digest(runs["c"])
    config_a = json.loads((runs["a"] / "config.json").read_text())
    config_c = json.loads((runs["c"] / "config.json").read_text())
    assert config_a["train"]["seed"] == 1 and config_c["train"]["seed"] == 2
    config_c["train"]["seed"] = 1
    assert config_a == config_c  # the seed is the only difference


def test_killed_and_resumed_run_ends_like_an_uninterrupted_one(runs) -> None:
    assert runs["stopped_at"]  # a checkpoint was there to resume from
    assert digest(runs["killed"]) == digest(runs["a"])
    rows, reference = (
        [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        for run in (runs["killed"], runs["a"])
    )
    timing = ("time", "elapsed", "samples_per_s")
    strip = [{k: v for k, v in r.items() if k not in timing} for r in rows]
    assert strip == [{k: v for k, v in r.items() if k not in timing} for r in reference]


def test_python_api_trains_the_same_run_folder_as_the_cli(runs, tmp_path) -> None:
    torch.manual_seed(987)  # scramble this process's RNGs: the run must not depend on them
    np.random.seed(987)
    random.seed(987)
    out = tmp_path / "api"
    run = genlatent.train(
        data=runs["data"], out=out, plots=False, seed=1, encoder="mlp", decoder="mlp",
        latent_dim=3, epochs=12, batch_size=16,
        set=["encoder.hidden=[16]", "decoder.hidden=[16]", "encoder.dropout=0.2",
             "train.checkpoint_every=3", "train.progress=false"],
    )
    assert run.path == out
    assert json.loads((out / "config.json").read_text()) == json.loads(
        (runs["a"] / "config.json").read_text())
    assert digest(out) == digest(runs["a"])
    assert run.metrics[-1]["epoch"] == 12 and run.config["train"]["seed"] == 1


def test_sample_and_evaluate_in_fresh_processes_follow_the_seed(runs, tmp_path) -> None:
    files = [tmp_path / "one.h5", tmp_path / "again.h5"]
    for path in files:
        genlatent_run("sample", runs["a"], "-n", "6", "--draw", "--seed", "4", "--out", path)
    one, again = (read_h5(path) for path in files)
    for key in ("x", "z"):
        np.testing.assert_array_equal(one[key], again[key])
    numbers = json.loads(genlatent_run("evaluate", runs["a"], runs["data"], "--iwae-samples",
                                       "5", "--seed", "3", "--json").stdout)
    # the Python API's seeded helpers give the CLI's numbers, whatever this process's RNGs
    torch.manual_seed(123)
    run = genlatent.load_run(runs["a"], device="cpu")
    same = run.evaluate(runs["data"], iwae_samples=5, seed=3)
    assert {k: v for k, v in numbers.items() if k in same} == same
    assert run.evaluate(runs["data"], iwae_samples=5, seed=4)["nll"] != same["nll"]
    np.testing.assert_array_equal(run.sample(6, draw=True, seed=4)["x"], one["x"])
    assert not np.array_equal(run.sample(6, draw=True, seed=5)["z"], one["z"])
