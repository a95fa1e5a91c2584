"""Multi-process training through ``torchrun``: read its environment, join the process group.

genlatent never launches processes itself: start ``torchrun --nproc_per_node N script.py`` (or
``python -m torch.distributed.run``) and every process runs the same ``Trainer.fit``. Ranks talk
over NCCL on GPUs and Gloo on CPUs; each reads its own shard of the data; rank 0 writes.

Elastic runs (``torchrun --max-restarts N``, a lost node): torchrun restarts the whole worker
group and every process runs ``Trainer(resume=True).fit`` again, which goes on from the last
checkpoint. One thing must be fixed for that here: torchrun's agent lends its workers one
key-value store for the whole run (``TORCHELASTIC_USE_AGENT_STORE``), so a restarted group
finds the previous group's keys in it, and a rank may read a dead peer's address and fail
("Connection refused") or hang. Each group therefore gets a store of its own, hosted by rank 0
(see :func:`_group_store`).
"""

from __future__ import annotations

import atexit
import os
import time
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: rank among ``world_size`` processes, local rank on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialised_here: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def setup(device_type: str) -> DistInfo:
    """Join the process group torchrun describes (if any); a no-op for a single process."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(
            dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK", 0), False
        )
    world_size = _env_int("WORLD_SIZE", 1)
    if world_size <= 1:
        return DistInfo()
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    store = _group_store(rank, world_size, _timeout())
    if store is None:
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    else:
        dist.init_process_group(backend=backend, store=store, rank=rank,
                                world_size=world_size)
    # The group stays up for later fits in this process (joining torchrun's rendezvous a second
    # time would hang) and is left at exit.
    atexit.register(_leave)
    return DistInfo(rank, world_size, local_rank, True)


_GROUP_STORE_KEY = "genlatent/group-store"
_CONNECT_TRY = timedelta(seconds=2)


def _timeout() -> timedelta:
    """How long the group store waits for a peer (``default_pg_timeout``, 30 minutes)."""
    from torch.distributed.constants import default_pg_timeout

    return default_pg_timeout


def _group_store(rank: int, world_size: int, timeout: timedelta) -> dist.Store | None:
    """A store that only this worker group uses, when torchrun lends its agent's store.

    Under torchrun (c10d rendezvous) every worker gets ``MASTER_ADDR:MASTER_PORT`` of a store
    kept by the agent of node 0 for the whole run, and ``init_process_group`` puts
    its keys there without a per-restart prefix (``TORCHELASTIC_RESTART_COUNT`` is counted per
    node, so it cannot be one). After a restart the previous group's keys are still there, and
    a rank that reads them before its peer has replaced them connects to a dead process. So
    rank 0 starts a fresh store on a free port and publishes its port and a token naming it in
    the agent's store; the others connect to the port they read, and a port that does not
    answer (every worker of the previous group has exited before a new group starts), or a
    store that does not hold the token, is stale: read the agent's store again.
    Returns None outside torchrun's shared store (``init_process_group``'s own ``env://``).
    """
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    host = os.environ.get("MASTER_ADDR")
    port = os.environ.get("MASTER_PORT")
    if not host or not port:
        return None
    agent = dist.TCPStore(host, int(port), world_size, is_master=False, timeout=timeout)
    if rank == 0:  # the agent store's host runs global rank 0: same machine, same address
        own = dist.TCPStore(host, 0, world_size, is_master=True, timeout=timeout,
                            wait_for_workers=False)
        token = f"{own.port}:{os.getpid()}:{time.time_ns()}"
        own.set(_GROUP_STORE_KEY, token)  # names the store, so a reused port is not taken
        agent.set(_GROUP_STORE_KEY, token)
        return own
    deadline = time.monotonic() + timeout.total_seconds()
    while True:
        token = agent.get(_GROUP_STORE_KEY)  # waits until a rank 0 has published one
        try:
            store = dist.TCPStore(host, int(token.split(b":")[0]), world_size,
                                  is_master=False, timeout=_CONNECT_TRY)
            if store.check([_GROUP_STORE_KEY]) and store.get(_GROUP_STORE_KEY) == token:
                store.set_timeout(timeout)
                return store
        except RuntimeError:  # DistNetworkError / DistStoreError: nobody listens there
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"rank {rank}: rank 0's store did not answer in {timeout}")
        time.sleep(0.2)


def _leave() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum ``tensor`` over ranks in place (a no-op for one process)."""
    if info.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_min(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
    return tensor


def gather_objects(obj: object, info: DistInfo) -> list[object]:
    """Every rank's ``obj`` (in rank order); ``[obj]`` for one process."""
    if not info.enabled:
        return [obj]
    out: list[object] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: object, info: DistInfo) -> object:
    """Rank 0's ``obj`` on every rank."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()
