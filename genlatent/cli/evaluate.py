"""``genlatent evaluate``: per-example nats and active units of a trained model on a dataset."""

from __future__ import annotations

import click

from ._common import (
    batch_size_option,
    default_key,
    device_option,
    emit_json,
    int_option,
    key_option,
    load_model,
    open_dataset,
    progress,
    run_argument,
    seed_option,
    seeded,
)


@click.command("evaluate", short_help="Per-example nats (ELBO, KL, IWAE NLL), active units.")
@run_argument
@click.argument("data", type=click.Path(dir_okay=False))
@key_option
@int_option(
    "--iwae-samples",
    default=50,
    minimum=0,
    help="Importance samples K of the IWAE estimate of -log p(x) (0: skip it).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@seed_option("Seed of the posterior draws (the numbers are Monte-Carlo estimates).")
@int_option(
    "--molecules",
    default=1000,
    minimum=0,
    help="Token data: molecules drawn from the prior for the molecule metrics (0: skip them).",
)
@batch_size_option(128)
@device_option
def evaluate_command(
    run: str,
    data: str,
    key: str | None,
    iwae_samples: int,
    as_json: bool,
    seed: int,
    molecules: int,
    batch_size: int,
    device: str,
) -> None:
    """Evaluate the model of RUN on DATA, averaged per example, in nats.

    \b
    neg_elbo        -ELBO = reconstruction + kl (one posterior draw per example)
    reconstruction  -log p(x|z), z ~ q(z|x), summed over the data dimensions
    kl              KL(q(z|x) || p(z)), closed form where there is one
    nll             -log p(x) estimated by the IWAE bound with K samples (an upper bound
                    on the true NLL that tightens as K grows)
    active_units    latent dimensions whose posterior mean varies across DATA with
                    variance > 0.01 (Burda et al., 2016)
    An AE has only reconstruction and active_units. Token data (molecules) add, with
    RDKit, validity, unique@N, novelty against the run's training file, internal
    diversity, Wasserstein distances of MW / logP / QED to DATA, and reconstruction (exact
    match of greedy decodes from the posterior means of DATA's first 1000 molecules).

    \b
    Examples:
      genlatent evaluate runs/quick datasets/samples/fashion_mnist_test_500.h5
      genlatent evaluate runs/quick test.h5 --iwae-samples 1000 --json
    """
    from ..analysis.inference import evaluate

    model = load_model(run, device)
    dataset = open_dataset(data, key or default_key(run))
    progress(
        f"evaluating on {len(dataset)} examples of {dataset.where}"
        + (f" (IWAE with K={iwae_samples})" if iwae_samples else "")
    )
    with seeded(seed, model.device):  # Monte-Carlo estimates: the same seed, the same numbers
        result = evaluate(
            model, dataset, iwae_samples=iwae_samples, batch_size=batch_size, device=model.device
        )
    result["seed"] = seed
    result["data"] = str(data)
    result["key"] = dataset.key
    if model.data.kind == "tokens" and molecules:
        from ..analysis import molecules as mol

        progress(f"molecule metrics on {molecules} prior samples")
        with seeded(seed, model.device):
            result["molecules"] = mol.evaluate_molecules(
                model, dataset, samples=molecules, train_path=mol.training_path(run),
                batch_size=batch_size,
            )  # fmt: skip
    if as_json:
        emit_json(result)
        return
    for name in ("neg_elbo", "reconstruction", "kl", "nll"):
        if name in result:
            suffix = f"   (IWAE, K={result['iwae_samples']})" if name == "nll" else ""
            click.echo(f"{name:<16}{result[name]:12.4f} nats{suffix}")
    click.echo(f"{'active_units':<16}{result['active_units']:>7d} of {result['latent_dim']}")
    click.echo(f"{'examples':<16}{result['examples']:>7d}")
    if "molecules" in result:
        from ..analysis.molecules import format_metrics

        click.echo("\n".join(format_metrics(result["molecules"])))
