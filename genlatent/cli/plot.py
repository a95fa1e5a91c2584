"""``genlatent plot``: the standard pictures of a run as PNG files."""

from __future__ import annotations

from pathlib import Path

import click

from ._common import (
    batch_size_option,
    color_by_option,
    default_key,
    device_option,
    int_option,
    key_option,
    load_model,
    open_dataset,
    out_folder_option,
    progress,
    run_argument,
    seed_option,
)


@click.command("plot", short_help="PNG pictures: curves, latent space, samples, ...")
@run_argument
@click.argument("data", required=False, type=click.Path(dir_okay=False))
@out_folder_option("Folder for the PNG files.  [default: RUN/plots]")
@key_option
@color_by_option(
    "1-D dataset of DATA to colour the latent space by.  [default: y, label, "
    "... or the first label with few values]"
)
@int_option(
    "--examples",
    default=8,
    minimum=1,
    help="Examples in the reconstruction picture.",
)
@int_option(
    "--samples",
    default=32,
    minimum=0,
    help="Samples from the prior (0: none).",
)
@int_option(
    "--max-points",
    default=5000,
    minimum=2,
    help="Examples encoded for the latent-space picture (the first rows).",
)
@seed_option()
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
