"""``genlatent train``: fit a model to an HDF5 dataset, writing a run folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ._common import progress

EXAMPLES = """
\b
Examples:
  genlatent train datasets/samples/fashion_mnist_2k.h5 --key x --latent-dim 16 \\
      --epochs 5 --out runs/fashion
  genlatent train data.h5 --encoder cnn --decoder cnn --prior mixture \\
      --set prior.components=10 --set 'encoder.channels=[32,64]' --set train.lr=3e-4 \\
      --likelihood bernoulli --out runs/mix
  genlatent train --config run.toml --epochs 50 --out runs/long
  genlatent train --out runs/long --resume --epochs 80     # continue a run
  genlatent train ising.h5 --condition T --encoder cnn --out runs/cond   # conditional VAE

\b
--set SECTION.KEY=VALUE sets one parameter (JSON values, else strings); SECTION is a part
(encoder, decoder, posterior, prior, likelihood), objective (beta, kl_warmup_steps, ...),
train (lr, weight_decay, ... any Trainer option) or data. The run folder's config.json is a
valid --config file. Precedence: defaults < --config < --set < named flags.
"""


_PART_DEFAULTS = {
    "encoder": "by data kind: mlp, cnn for grids, gru for tokens",
    "decoder": "by data kind: mlp, cnn for grids, gru for tokens",
    "posterior": "normal",
    "prior": "standard_normal",
    "likelihood": "by data kind: bernoulli, categorical for tokens, negative_binomial for counts",
}


def _part_option(field: str) -> Any:
    return click.option(
        f"--{field}",
        default=None,
        metavar="NAME",
        help=f"The {field} by registered name (`genlatent plugins` lists them).  "
        f"[default: {_PART_DEFAULTS[field]}]",
    )


@click.command(
    "train", epilog=EXAMPLES, short_help="Train a model on an HDF5 file; write a run folder."
)
@click.argument("data", required=False, type=click.Path(path_type=Path))
@click.option("--key", default=None, help="HDF5 dataset key of the examples.  [default: x]")
@click.option(
    "--val",
    "val",
    default=None,
    type=click.Path(path_type=Path),
    help="Validation HDF5 file (same key) instead of a held-out fraction.",
)
@click.option("--val-key", default=None, help="Key in the --val file, if not --key.")
@click.option(
    "--val-fraction",
    default=None,
    type=click.FloatRange(0.0, 0.9),
    help="Fraction of DATA held out for validation when there is no --val.  [default: 0.1]",
)
@click.option(
    "--condition",
    "condition",
    multiple=True,
    metavar="NAME[:KIND]",
    help="Condition encoder and decoder on this 1-D column of DATA (an .h5ad obs column), "
    "aligned with the examples (repeatable). Floats are numeric (standardised), strings, "
    "enums and integers categorical (one-hot); NAME:numeric or NAME:categorical chooses.",
)
@click.option("--model", default=None, metavar="NAME", help="vae or ae.  [default: vae]")
@_part_option("encoder")
@_part_option("decoder")
@_part_option("posterior")
@_part_option("prior")
@_part_option("likelihood")
@click.option(
    "--latent-dim",
    type=click.IntRange(min=1),
    default=None,
    help="Size of the latent code.  [default: 16]",
)
@click.option(
    "--epochs", type=click.IntRange(min=1), default=None, help="Epochs to train.  [default: 10]"
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="Examples per step.  [default: 128]",
)
@click.option(
    "--lr",
    type=click.FloatRange(min=0.0, min_open=True),
    default=None,
    help="Learning rate (Adam).  [default: 0.001]",
)
@click.option("--device", default=None, help="auto, cpu, cuda, cuda:N or mps.  [default: auto]")
@click.option("--seed", type=int, default=None, help="Seed for every RNG.  [default: 0]")
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="SECTION.KEY=VALUE",
    help="Set one parameter, e.g. 'encoder.hidden=[400,200]' (repeatable).",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path),
    default=None,
    help="TOML (.toml) or JSON config file; flags win over it.",
)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(path_type=Path),
    help="Run folder to write (model/, metrics.jsonl, config.json, checkpoints/).",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the run in --out from its last checkpoint (with its config).",
)
@click.option("--overwrite", is_flag=True, help="Replace the run already in --out.")
@click.option(
    "--plots/--no-plots",
    default=True,
    show_default=True,
    help="Draw the pictures into RUN/plots after training (needs matplotlib).",
)
@click.option(
    "--print-config",
    is_flag=True,
    help="Print the resolved config and model spec as JSON and exit.",
)
def train_command(
    data: Path | None,
    key: str | None,
    val: Path | None,
    val_key: str | None,
    val_fraction: float | None,
    condition: tuple[str, ...],
    model: str | None,
    encoder: str | None,
    decoder: str | None,
    posterior: str | None,
    prior: str | None,
    likelihood: str | None,
    latent_dim: int | None,
    epochs: int | None,
    batch_size: int | None,
    lr: float | None,
    device: str | None,
    seed: int | None,
    assignments: tuple[str, ...],
    config_file: Path | None,
    out: Path,
    resume: bool,
    overwrite: bool,
    plots: bool,
    print_config: bool,
) -> None:
    """Train a VAE (or AE) on DATA (an HDF5 file) and write the run folder --out.

    The folder gets model/ (the trained model, loadable with genlatent.load), metrics.jsonl
    (one line per epoch), checkpoints/ and config.json (the resolved configuration). Progress
    goes to stderr; the run folder and final metrics to stdout. The same run from Python:
    genlatent.train(config, data=..., out=..., set=[...], epochs=...).
    """
    from ..runs import prepare

    flags = {
        "encoder": encoder, "decoder": decoder, "posterior": posterior, "prior": prior,
        "likelihood": likelihood, "model": model, "latent_dim": latent_dim, "key": key,
        "val": val, "val_key": val_key, "val_fraction": val_fraction, "epochs": epochs,
        "batch_size": batch_size, "lr": lr, "device": device, "seed": seed,
        "condition": list(condition) or None,
    }
    plan = prepare(config_file, data=data, out=out, resume=resume, overwrite=overwrite,
                   set=assignments, **flags)
    for note in plan.notes:
        progress(f"note: {note}")
    if print_config:
        click.echo(json.dumps({"config": plan.config, "spec": plan.spec}, indent=2, sort_keys=True))
        return
    run = plan.execute(plots=plots)
    result = run.metrics[-1] if run.metrics else {}
    click.echo(f"run folder: {out}")
    shown = ("loss", "neg_elbo", "reconstruction", "kl")
    for split in ("train", "val"):
        for name in shown:
            value = result.get(f"{split}_{name}")
            if isinstance(value, float):
                click.echo(f"{split}_{name}: {value:.4f}")
