"""A lost node: torchrun restarts the worker group, the run resumes from its last checkpoint,
and the final model equals an uninterrupted run's.

Two simulated nodes on localhost (two ``torchrun`` agents, c10d rendezvous, Gloo, one rank
each) run ``tests/elastic_train.py``; the worker of rank 0, later the worker of rank 1,
SIGKILLs itself mid-run. The model is compared with a separate uninterrupted torchrun.
Every process started here carries a token in its environment and is killed at the end of
the test by that token (torchrun starts its workers in sessions of their own, so killing the
agents' process groups would leave them running).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from genlatent.training import distributed as ddp

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "elastic_train.py"
TOKEN_VAR = "GENLATENT_TEST_PROCESS_TOKEN"
ROWS, DIM, BATCH, EPOCHS, EVERY = 256, 20, 32, 3, 3
STEPS_PER_EPOCH = ROWS // 2 // BATCH  # each of the 2 ranks reads half the rows

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="finds processes in /proc")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Processes:
    """Starts processes that carry a token in their environment; kills all that carry it."""

    def __init__(self, logs: Path) -> None:
        self.token = uuid.uuid4().hex
        self.logs = logs
        self.started: list[tuple[subprocess.Popen, Path]] = []

    def start(self, cmd: list[str], name: str, **env: str) -> subprocess.Popen:
        full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT),
                    TOKEN_VAR: self.token, **env}
        log = self.logs / f"{name}.log"
        with open(log, "w") as handle:  # a file, not a pipe: a chatty process never blocks
            proc = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, env=full_env,
                                    start_new_session=True, cwd=ROOT)
        self.started.append((proc, log))
        return proc

    def wait(self, timeout: float) -> list[int]:
        """Every started process's exit status; on a time-out kill them all and fail."""
        deadline = time.monotonic() + timeout
        for proc, _ in self.started:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.kill_all()
                pytest.fail(f"timed out after {timeout:.0f} s\n{self.tails()}")
        return [proc.returncode for proc, _ in self.started]

    def tails(self, chars: int = 3000) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()[-chars:]}" for _, log in self.started)

    def tagged_pids(self) -> list[int]:
        mark = f"{TOKEN_VAR}={self.token}".encode()
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                if mark in (entry / "environ").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
        return pids

    def kill_all(self) -> None:
        deadline = time.monotonic() + 10
        while (pids := self.tagged_pids()) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        for proc, _ in self.started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    logs = tmp_path / "logs"
    logs.mkdir()
    processes = Processes(logs)
    try:
        yield processes
    finally:
        processes.kill_all()
        assert not processes.tagged_pids(), "processes of the test outlived it"


# --------------------------------------------------------------------------- the store

WORKER = """
import sys, time
time.sleep(float(sys.argv[1]))
import torch
from genlatent.training import distributed as ddp
info = ddp.setup("cpu")
total = ddp.all_reduce_sum(torch.tensor([info.rank + 1.0]), info)
print("sum", int(total.item()), flush=True)
"""


def test_a_restarted_group_never_reads_the_previous_groups_store_keys(
    procs: Processes,
) -> None:
    """torchrun's agent lends every worker group of a run the same store; a group started
    after a restart must not pick up the dead group's addresses from it (it would fail with
    "Connection refused" or hang). Here the test holds that store, and two groups join in
    turn, the second with rank 1 late: rank 0 finds only the first group's keys at first."""
    agent = torch.distributed.TCPStore("127.0.0.1", 0, 2, is_master=True,
                                       wait_for_workers=False)
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(agent.port), "WORLD_SIZE": "2",
           "LOCAL_RANK": "0", "TORCHELASTIC_USE_AGENT_STORE": "True"}
    for group, late in enumerate((None, 1)):
        procs.started.clear()
        for rank in (0, 1):
            delay = "3" if rank == late else "0"
            procs.start([sys.executable, "-c", WORKER, delay], f"group{group}-rank{rank}",
                        RANK=str(rank), **env)
        codes = procs.wait(timeout=90)
        assert codes == [0, 0], f"group {group}\n{procs.tails()}"
        for _, log in procs.started:
            assert "sum 3" in log.read_text(), procs.tails()


def test_group_store_is_the_one_rank_0_publishes_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rank 1 may read the port of an earlier group's store (dead, or reused by another live
    store) before rank 0 publishes its own: it must wait for rank 0's, not take that one."""
    agent = torch.distributed.TCPStore("127.0.0.1", 0, 2, is_master=True,
                                       wait_for_workers=False)
    for name, value in (("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", str(agent.port)),
                        ("TORCHELASTIC_USE_AGENT_STORE", "True")):
        monkeypatch.setenv(name, value)
    other = torch.distributed.TCPStore("127.0.0.1", 0, 2, is_master=True,
                                       wait_for_workers=False)
    other.set(ddp._GROUP_STORE_KEY, "another group")
    agent.set(ddp._GROUP_STORE_KEY, f"{other.port}:1:1")  # left by an earlier group
    found: dict[str, object] = {}
    rank1 = threading.Thread(target=lambda: found.update(
        store=ddp._group_store(1, 2, timedelta(seconds=60))), daemon=True)
    rank1.start()
    rank1.join(timeout=1.5)
    assert rank1.is_alive(), "rank 1 took a store rank 0 had not published"
    own = ddp._group_store(0, 2, timedelta(seconds=60))
    rank1.join(timeout=30)
    assert not rank1.is_alive()
    found["store"].set("from rank 1", "hello")  # type: ignore[attr-defined]
    assert own.get("from rank 1") == b"hello"
    monkeypatch.delenv("TORCHELASTIC_USE_AGENT_STORE")
    assert ddp._group_store(0, 2, timedelta(seconds=1)) is None  # plain env:// elsewhere


# --------------------------------------------------------------------------- a lost node


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "bits.h5"
    rng = np.random.default_rng(0)
    probs = rng.uniform(0.1, 0.9, size=DIM)
    with h5py.File(path, "w") as f:
        f["x"] = (rng.uniform(size=(ROWS, DIM)) < probs).astype(np.uint8)
    return path


def train_command(run: Path, data: Path, *extra: str) -> list[str]:
    return [str(SCRIPT), str(data), str(run), "--epochs", str(EPOCHS), "--batch-size",
            str(BATCH), "--checkpoint-every", str(EVERY), "--seed", "3",
            "--record", str(run) + ".jsonl", *extra]


def start_node(procs: Processes, name: str, run: Path, port: int, data: Path,
               *extra: str) -> None:
    """One simulated node: a torchrun agent with one worker."""
    procs.start([
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
        "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", run.name,
        "--max-restarts", "2", "--monitor-interval", "0.1", *train_command(run, data, *extra),
    ], name)


def test_lost_node_resumes_from_its_checkpoint_and_ends_with_the_uninterrupted_model(
    procs: Processes, tmp_path: Path, data_file: Path,
) -> None:
    straight, cut = tmp_path / "straight", tmp_path / "cut"
    # rank 0's worker (the one that writes) dies after step 2, before the first checkpoint
    # (step 3): every rank restarts and starts afresh; then rank 1's worker dies after step 7,
    # mid-epoch 2, one step after the checkpoint of step 6: every rank resumes from it. The
    # third group finishes the run.
    kills = ((2, 0), (7, 1))
    assert kills[0][0] < EVERY and kills[1][0] % EVERY and kills[1][0] % STEPS_PER_EPOCH
    port = free_port()
    kill_at = ",".join(f"{step}:{rank}" for step, rank in kills)
    start_node(procs, "cut-a", cut, port, data_file, "--kill-at", kill_at)
    start_node(procs, "cut-b", cut, port, data_file, "--kill-at", kill_at)
    # the reference: a separate, uninterrupted torchrun with 2 ranks (one agent: cheaper)
    procs.start([sys.executable, "-m", "torch.distributed.run", "--standalone",
                 "--nproc-per-node", "2", *train_command(straight, data_file)], "straight")
    codes = procs.wait(timeout=240)
    assert codes == [0, 0, 0], procs.tails()

    # two workers were SIGKILLed and their agents restarted the group each time
    agents = "".join((procs.logs / f"{name}.log").read_text() for name in ("cut-a", "cut-b"))
    assert agents.count("exitcode: -9") == len(kills), procs.tails()
    starts = [json.loads(line) for line in Path(str(cut) + ".jsonl").read_text().splitlines()]
    assert sorted((s["start_step"], s["rank"]) for s in starts) == [
        (0, 0), (0, 0), (0, 1), (0, 1), (6, 0), (6, 1)], starts
    assert sorted(p.name for p in cut.glob(".killed-*")) == [
        f".killed-step{step}-rank{rank}" for step, rank in kills]

    # the same model as the uninterrupted run, bit for bit; the same metrics
    def weights(run: Path) -> dict[str, torch.Tensor]:
        return torch.load(run / "model" / "weights.pt", weights_only=True)

    a, b = weights(straight), weights(cut)
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    meta = [json.loads((run / "model" / "meta.json").read_text()) for run in (straight, cut)]
    assert meta[0]["weights_sha256"] == meta[1]["weights_sha256"]
    drop = ("samples_per_s", "time", "elapsed")

    def metrics(run: Path) -> list[dict]:
        return [{k: v for k, v in json.loads(line).items() if k not in drop}
                for line in (run / "metrics.jsonl").read_text().splitlines()]

    assert metrics(cut) == metrics(straight)
    assert [r["step"] for r in metrics(cut)] == [STEPS_PER_EPOCH * e for e in (1, 2, 3)]
    assert json.loads((cut / "checkpoints" / "latest.json").read_text())["finished"]
