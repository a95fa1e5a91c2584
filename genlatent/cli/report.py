"""``genlatent report``: one HTML page and one JSON file about a run's latent space."""

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


def _neighbours(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        ks = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from None
    if not ks or min(ks) < 1:
        raise click.BadParameter(f"expected positive integers, got {value!r}")
    return ks


@click.command("report", short_help="HTML + JSON report on the latent space of a run.")
@run_argument
@click.argument("data", type=click.Path(dir_okay=False))
@out_folder_option("Folder for report.html and report.json.  [default: RUN/report]")
@key_option
@click.option(
    "--pca-fit",
    "pca_fit",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="FILE",
    help="Also fit PCA on this file (e.g. the training data) for the fair comparison.  "
    "[default: PCA fitted on DATA only]",
)
@color_by_option("1-D dataset of DATA to colour the latent map by.  [default: y, label, ...]")
@int_option(
    "--max-points",
    default=2000,
    minimum=4,
    help="Examples examined (a random subset); the neighbour scores cost O(N^2).",
)
@click.option(
    "--neighbours",
    default="5,10,20",
    show_default=True,
    callback=_neighbours,
    help="k for trustworthiness and continuity (comma-separated).",
)
@int_option(
    "--prior-samples",
    default=1000,
    minimum=0,
    help="Prior draws for the completeness numbers (0: none).",
)
@seed_option()
@batch_size_option()
@device_option
def report_command(
    run: str,
    data: str,
    out: Path | None,
    key: str | None,
    pca_fit: str | None,
    label: str | None,
    max_points: int,
    neighbours: tuple[int, ...],
    prior_samples: int,
    seed: int,
    batch_size: int,
    device: str,
) -> None:
    """Ask the textbook's questions of the model of RUN on DATA (held-out data is best) and
    write the answers as one HTML page (pictures embedded; opens without a server) and JSON:

    \b
    - compression: reconstruction error of the model vs PCA with as many dimensions
    - continuity: trustworthiness and continuity over k nearest neighbours
    - completeness: where decoded prior samples are encoded; aggregate posterior vs prior
    - overfitting: validation minus training neg ELBO per epoch (metrics.jsonl)
    - active units, latent map, reconstructions, samples, interpolations, curves

    Needs matplotlib (pip install 'genlatent[plot]').

    \b
    Example:
      genlatent report runs/quick datasets/samples/fashion_mnist_test_500.h5 \\
          --pca-fit datasets/samples/fashion_mnist_2k.h5 --out runs/quick/report
    """
    from ..analysis.html_report import write_report
    from ..analysis.plots import pyplot
    from ..analysis.runs import run_dir

    pyplot()  # fail early, in one line, without matplotlib
    model = load_model(run, device)
    dataset = open_dataset(data, key or default_key(run), labels=True)
    folder = out if out is not None else (run_dir(Path(run)) or Path(run)) / "report"
    progress(f"report on {run} with {dataset.where} into {folder}")
    written = write_report(
        run,
        dataset,
        folder,
        pca_data=open_dataset(pca_fit, dataset.key) if pca_fit else None,
        label=label,
        max_points=max_points,
        neighbours=neighbours,
        prior_samples=prior_samples,
        seed=seed,
        batch_size=batch_size,
        model=model,
        progress=progress,
    )
    click.echo(str(written["html"]))
    click.echo(str(written["json"]))
