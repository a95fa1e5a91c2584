"""``genlatent plot``: the standard pictures of a run as PNG files."""

from __future__ import annotations

from pathlib import Path

import click

from ._common import (
    batch_size_option,
    default_key,
    device_option,
    key_option,
    load_model,
    open_dataset,
    progress,
    run_argument,
)


@click.command("plot", short_help="PNG pictures: curves, latent space, samples, ...")
@run_argument
@click.argument("data", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the PNG files.  [default: RUN/plots]",
)
@key_option
@click.option(
    "--color-by",
    "label",
    default=None,
    metavar="LABEL",
    help="1-D dataset of DATA to colour the latent space by.  [default: y, label, "
    "... or the first label with few values]",
)
@click.option(
    "--examples",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Examples in the reconstruction picture.",
)
@click.option(
    "--samples",
    type=click.IntRange(min=0),
    default=32,
    show_default=True,
    help="Samples from the prior (0: none).",
)
@click.option(
    "--max-points",
    type=click.IntRange(min=2),
    default=5000,
    show_default=True,
    help="Examples encoded for the latent-space picture (the first rows).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the draws.")
@batch_size_option()
@device_option
def plot_command(
    run: str,
    data: str | None,
    out: Path | None,
    key: str | None,
    label: str | None,
    examples: int,
    samples: int,
    max_points: int,
    seed: int,
    batch_size: int,
    device: str,
) -> None:
    """Draw the pictures of RUN as PNG files: training curves and samples from the prior;
    with DATA also the latent space, reconstructions and interpolations.

    Images are drawn as images, lattices (values in [-1, 1]) as grids, 1-D signals and
    vectors as line plots, token sequences (SMILES) as text tables. Needs matplotlib
    (pip install 'genlatent[plot]').

    \b
    Examples:
      genlatent plot runs/quick datasets/samples/fashion_mnist_test_500.h5 --out runs/quick/plots
      genlatent plot runs/quick                       # curves and samples only
    """
    from ..analysis.plots import pyplot
    from ..analysis.report import make_plots
    from ..analysis.runs import run_dir

    pyplot()  # fail early, in one line, without matplotlib
    model = load_model(run, device)
    dataset = None
    if data is not None:
        dataset = open_dataset(data, key or default_key(run), labels=True)
    folder = out if out is not None else (run_dir(Path(run)) or Path(run)) / "plots"
    progress(f"drawing pictures of {run} into {folder}")
    for path in make_plots(
        run,
        folder,
        model,
        dataset,
        label=label,
        examples=examples,
        samples=samples,
        max_points=max_points,
        seed=seed,
        batch_size=batch_size,
    ):
        click.echo(str(path))
