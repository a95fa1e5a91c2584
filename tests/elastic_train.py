"""Train a small VAE under ``torchrun`` with the public API; optionally die mid-epoch.

Driven by ``tests/test_elastic.py`` and by the "Losing a node" commands in docs/training.md.
Every process runs the same thing: build the model from the seed, then
``Trainer(resume=True).fit``, which starts afresh when the run folder has no checkpoint yet
and continues from the newest one otherwise. So when ``torchrun --max-restarts`` restarts the
worker group after a node's worker died, the run goes on from its last checkpoint.

``--kill-at 2:0,7:1`` makes the worker of rank 0 SIGKILL itself right after step 2, and the
worker of rank 1 right after step 7, once each (whichever node they are on: ranks are assigned
at every rendezvous). An empty marker file in the run folder records each kill done, so the
restarted worker goes past that step. ``--record FILE`` appends one JSON line per fit start
(rank, torchrun's restart count of this node, the step the fit starts from), so a test can see
what each worker group did.

    torchrun ... tests/elastic_train.py DATA.h5 RUN_DIR --epochs 3 --checkpoint-every 3
"""

from __future__ import annotations

import argparse
import json
import os
import signal
from pathlib import Path
from typing import Any

import torch

import genlatent
from genlatent.training import Callback


class Chaos(Callback):
    """SIGKILLs this process after chosen steps (once each); records each fit start."""

    def __init__(self, kills: list[tuple[int, int]], out: str, record: str | None) -> None:
        self.rank = int(os.environ.get("RANK", "0"))
        self.steps = {step for step, rank in kills if rank == self.rank}
        self.out = Path(out)
        self.record = record

    def _marker(self, step: int) -> Path:
        return self.out / f".killed-step{step}-rank{self.rank}"  # goes with the run folder

    def on_fit_start(self, trainer: Any) -> None:
        if self.record:
            line = json.dumps({
                "rank": self.rank, "node": os.environ.get("GROUP_RANK"),
                "restart_count": int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")),
                "start_step": trainer.step, "pid": os.getpid(),
            })
            with open(self.record, "a") as handle:  # one short line per append
                handle.write(line + "\n")

    def on_step_end(self, trainer: Any, step: int) -> None:
        if step in self.steps and not self._marker(step).exists():
            self._marker(step).touch()
            os.kill(os.getpid(), signal.SIGKILL)


def _kills(text: str) -> list[tuple[int, int]]:
    """``"2:0,7:1"`` -> ``[(2, 0), (7, 1)]`` (step, rank)."""
    try:
        pairs = [item.split(":") for item in text.split(",") if item.strip()]
        return [(int(step), int(rank)) for step, rank in pairs]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected STEP:RANK,..., got {text!r}") from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="HDF5 training file (key 'x')")
    parser.add_argument("out", help="run folder (on a filesystem every node can read)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--checkpoint-every", type=int, default=3, help="steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latent-dim", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=16)
    parser.add_argument("--kill-at", type=_kills, default=[],
                        help="STEP:RANK,...: that rank's worker dies after that step, once")
    parser.add_argument("--record", default=None, help="append a JSON line per fit start here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    data = genlatent.H5Dataset(args.data, "x")
    model = genlatent.build({
        "data": data.spec.to_dict(), "latent_dim": args.latent_dim,
        "encoder": {"name": "mlp", "params": {"hidden": [args.hidden]}},
        "decoder": {"name": "mlp", "params": {"hidden": [args.hidden]}},
    }, seed=args.seed)
    trainer = genlatent.Trainer(
        epochs=args.epochs, batch_size=args.batch_size, device="cpu", seed=args.seed,
        checkpoint_every=args.checkpoint_every, out_dir=args.out, resume=True,
        progress=False, tensorboard=False, callbacks=[Chaos(args.kill_at, args.out, args.record)],
    )
    trainer.fit(model, data)


if __name__ == "__main__":
    main()
