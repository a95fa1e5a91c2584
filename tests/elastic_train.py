"""Train a small VAE under ``torchrun`` with the public API; optionally die mid-epoch.

Driven by ``tests/test_elastic.py`` and by the "Losing a node" commands in docs/training.md.
Every process runs the same thing: build the model from the seed, then
``Trainer(resume=True).fit``, which starts afresh when the run folder has no checkpoint yet
and continues from the newest one otherwise. So when ``torchrun --max-restarts`` restarts the
worker group after a node's worker died, the run goes on from its last checkpoint.

``--kill-at 2,7`` makes this node's worker SIGKILL itself right after step 2 on its first
attempt and after step 7 on its second (``TORCHELASTIC_RESTART_COUNT`` counts the attempts of
this node's agent); give it on one node only. ``--record FILE`` appends one JSON line per fit
start (attempt, rank, the step it starts from), so a test can see what each attempt did.

    torchrun ... tests/elastic_train.py DATA.h5 RUN_DIR --epochs 3 --checkpoint-every 3
"""

from __future__ import annotations

import argparse
import json
import os
import signal
from typing import Any

import torch

import genlatent
from genlatent.training import Callback


class Chaos(Callback):
    """SIGKILLs this process after a chosen step of a chosen attempt; logs each fit start."""

    def __init__(self, kill_at: list[int], log: str | None) -> None:
        self.attempt = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
        self.kill_at = kill_at
        self.kill_step = kill_at[self.attempt] if self.attempt < len(kill_at) else None
        self.log = log

    def on_fit_start(self, trainer: Any) -> None:
        if self.log:
            line = json.dumps({"attempt": self.attempt, "rank": int(os.environ.get("RANK", "0")),
                               "node": os.environ.get("GROUP_RANK"), "start_step": trainer.step,
                               "kills": self.kill_at, "pid": os.getpid()})
            with open(self.log, "a") as handle:  # one short line per append: no interleaving
                handle.write(line + "\n")

    def on_step_end(self, trainer: Any, step: int) -> None:
        if step == self.kill_step:
            os.kill(os.getpid(), signal.SIGKILL)


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
    parser.add_argument("--kill-at", default="", help="steps, one per attempt: '2,7'")
    parser.add_argument("--record", default=None, help="append a JSON line per fit start here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    data = genlatent.H5Dataset(args.data, "x")
    model = genlatent.build({
        "data": data.spec.to_dict(), "latent_dim": args.latent_dim,
        "encoder": {"name": "mlp", "params": {"hidden": [args.hidden]}},
        "decoder": {"name": "mlp", "params": {"hidden": [args.hidden]}},
    }, seed=args.seed)
    kill_at = [int(s) for s in args.kill_at.split(",") if s.strip()]
    trainer = genlatent.Trainer(
        epochs=args.epochs, batch_size=args.batch_size, device="cpu", seed=args.seed,
        checkpoint_every=args.checkpoint_every, out_dir=args.out, resume=True,
        progress=False, tensorboard=False, callbacks=[Chaos(kill_at, args.record)],
    )
    trainer.fit(model, data)


if __name__ == "__main__":
    main()
