"""Fashion-MNIST test log-likelihood of genlatent's VAEs, by prior and by network.

Data: Fashion-MNIST from the Debian package ``dataset-fashion-mnist`` made into HDF5 by the
recipe ``datasets/fashion_mnist.py``; statically binarised once: each pixel is an independent
Bernoulli draw with p = intensity / 255, with ``numpy.random.default_rng(seed)`` (train and
test drawn from the same generator, train first), then fixed for every model and epoch.

Models (all Bernoulli likelihood, Adam lr 1e-3, batch 128, trained by ``genlatent.Trainer``
from the binarised HDF5 file; the MLP models for the same number of epochs):
- ``mlp-normal``: the seed's reference VAE, MLP 784-400-20 both ways, standard-normal prior;
- ``mlp-laplace``: the same with a Laplace(0, 1) prior (Monte-Carlo or closed-form KL);
- ``mlp-mixture``: the same with a 10-component learnable Gaussian mixture prior;
- ``cnn-normal``: CNN encoder/decoder (channels 32, 64), standard-normal prior, 20 latents
  (``--cnn-epochs``: it costs about 10x an MLP epoch on a CPU);
- ``ae``: the seed's deterministic autoencoder (MLP 784-400-20): reconstruction error only.

Test NLL is ``-model.iwae_bound(x, k=1000)`` averaged over the first ``--iwae-n`` test images
(the IWAE bound with k = 1000 upper-bounds the NLL; a subset keeps CPU time in budget). The
test negative ELBO on the full test set is reported too. A PNG shows the AE's codes (first two
principal components) coloured by class.

    python benchmarks/fashion_mnist_nll.py                # < 30 min on 2 free CPU cores
    python benchmarks/fashion_mnist_nll.py --quick        # smoke run
    python benchmarks/fashion_mnist_nll.py --epochs 50 --iwae-n 10000 --device cuda
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _science as sci  # noqa: E402

import genlatent  # noqa: E402
from genlatent.data import H5Dataset, write_h5  # noqa: E402

MODELS = ("mlp-normal", "mlp-laplace", "mlp-mixture", "cnn-normal", "ae")
PRIORS = {
    "normal": "standard_normal",
    "laplace": "laplace",
    "mixture": {"name": "mixture", "params": {"components": 10}},
}


def load_binarised(folder: Path, seed: int) -> dict[str, np.ndarray]:
    """Statically binarised train/test images (N, 1, 28, 28) uint8 {0, 1}, labels, and the
    binarised train file ``fashion_mnist_binarised_train.h5`` that training reads."""
    files = [folder / f"fashion_mnist_{s}.h5" for s in ("train", "test")]
    if not all(f.exists() for f in files):
        recipe = sci.load_recipe("fashion_mnist")
        recipe.make_full(recipe.SOURCE, folder, seed=0)
    rng = np.random.default_rng(seed)
    out: dict = {}
    for split, path in zip(("train", "test"), files, strict=True):
        ds = H5Dataset(path, labels="y")
        batch = ds.read(np.arange(len(ds)))
        p = batch["x"].numpy()  # [0, 1] intensities
        out[f"x_{split}"] = (rng.random(p.shape) < p).astype(np.uint8)
        out[f"y_{split}"] = batch["labels"]["y"].numpy().astype(np.int64)
    out["train_file"] = write_h5(
        folder / f"fashion_mnist_binarised_seed{seed}_train.h5",
        out["x_train"],
        labels={"y": out["y_train"]},
        attrs={"kind": "grids", "scale": 1.0},
        root_attrs={"source": f"fashion_mnist_train.h5 binarised with default_rng({seed})"},
        shuffle=False,  # the source file is shuffled already
    )
    return out


def spec(name: str, latent_dim: int) -> dict:
    net, prior = name.split("-") if "-" in name else ("mlp", "normal")
    if net == "mlp":  # the MLP flattens the 1 x 28 x 28 grid: 784-400-20
        encoder = decoder = {"name": "mlp", "params": {"hidden": [400]}}
    else:
        encoder = decoder = {"name": "cnn", "params": {"channels": [32, 64]}}
    out = {
        "model": "ae" if name == "ae" else "vae",
        "latent_dim": latent_dim,
        "data": {"kind": "grids", "shape": [1, 28, 28]},
        "encoder": encoder,
        "decoder": decoder,
        "likelihood": "bernoulli",
    }
    if name != "ae":
        out.update(posterior="normal", prior=PRIORS[prior])
    return out


@torch.no_grad()
def evaluate(model, x: torch.Tensor, iwae_n: int, k: int, device) -> dict:
    """Full-test negative ELBO (or reconstruction for the AE) and IWAE NLL on a subset."""
    model.eval()
    out: dict[str, float] = {}
    view = lambda b: b.float().to(device)  # noqa: E731
    if getattr(model, "posterior", None) is None:
        rec = sci.in_batches(
            lambda i: model.reconstruction_nll(model.encode_mean(view(x[i])), view(x[i])),
            len(x), 500,
        )  # fmt: skip
        out["reconstruction"] = float(rec.mean())
        recon = sci.in_batches(
            lambda i: model.reconstruct(view(x[i])).flatten(1).cpu(), len(x), 500
        )
        flat = x.float().flatten(1)
        out["pixel_error"] = float((recon.round() != flat).float().mean())
        out["mse"] = float(((recon - flat) ** 2).sum(1).mean())
        return out
    neg_elbo = sci.in_batches(lambda i: model.elbo(view(x[i]))["neg_elbo"], len(x), 500)
    out["neg_elbo"] = float(neg_elbo.mean())
    xs = x[:iwae_n]
    batch = max(1, 20000 // k)
    nll = -sci.in_batches(
        lambda i: model.iwae_bound(view(xs[i]), k=k, batch_k=250).cpu(), len(xs), batch
    )
    out["nll"] = float(nll.mean())
    out["nll_se"] = float(nll.std() / math.sqrt(len(nll)))
    out["per_example"] = nll.numpy()
    return out


def plot_codes(path: Path, codes: np.ndarray, labels: np.ndarray, names: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from genlatent.analysis.plots import save_figure

    centred = codes - codes.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ vt[:2].T
    fig, ax = plt.subplots(figsize=(7, 6))
    for c in range(10):
        keep = labels == c
        ax.scatter(xy[keep, 0], xy[keep, 1], s=2, alpha=0.6, label=names[c])
    ax.set(
        xlabel="PC 1 of AE code",
        ylabel="PC 2 of AE code",
        title="Fashion-MNIST test set: AE codes (20-d), first two principal components",
    )
    ax.legend(markerscale=5, fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sci.common_flags(parser, epochs=5, minutes=8.0)
    parser.add_argument("--cnn-epochs", type=int, default=2, help="epochs of the CNN VAE")
    parser.add_argument("--data", default=str(sci.ROOT / "runs" / "science"))
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--latent-dim", type=int, default=20)
    parser.add_argument("--iwae-n", type=int, default=1000, help="test images scored by IWAE")
    parser.add_argument("--iwae-n-cnn", type=int, default=200, help="the same, for the CNN")
    parser.add_argument("--k", type=int, default=1000, help="IWAE importance samples")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.cnn_epochs, args.iwae_n, args.iwae_n_cnn, args.k = 1, 1, 50, 20, 50
    device = sci.setup(args)
    out_dir = Path(args.out or sci.ROOT / "runs" / "science")
    begin = time.perf_counter()
    data = load_binarised(Path(args.data), args.seed)
    train_ds = H5Dataset(data["train_file"])
    if args.quick:
        train_ds = train_ds.subset(0, 3000)
    x_test = torch.from_numpy(data["x_test"])
    print(
        f"data: train {len(train_ds)} x {list(train_ds.spec.shape)}, test {tuple(x_test.shape)} "
        f"(binarised, seed {args.seed})",
        flush=True,
    )
    recipe = sci.load_recipe("fashion_mnist")
    results: dict[str, dict] = {}
    for name in args.models:
        torch.manual_seed(args.seed)
        model = genlatent.build(spec(name, args.latent_dim)).to(device)
        epochs = args.cnn_epochs if name.startswith("cnn") else args.epochs
        print(f"{name}: training {epochs} epochs", flush=True)
        info = sci.fit_trainer(
            model,
            train_ds,
            epochs=epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            device=device,
            out_dir=out_dir / f"fashion_mnist_{name}",
            minutes=args.minutes,
        )
        start = time.perf_counter()
        n = args.iwae_n_cnn if name.startswith("cnn") else args.iwae_n
        res = evaluate(model, x_test, n, args.k, device)
        res.update(info, eval_seconds=time.perf_counter() - start, iwae_n=n)
        results[name] = res
        shown = {k: round(v, 3) for k, v in res.items() if isinstance(v, float)}
        print(f"{name}: {shown}", flush=True)
        if name == "ae":
            codes = sci.in_batches(
                lambda i, m=model: m.encode_mean(x_test[i].float().to(device)).cpu(),
                len(x_test), 1000,
            )  # fmt: skip
            plot_path = out_dir / "fashion_mnist_ae_latent.png"
            plot_codes(plot_path, codes.numpy(), data["y_test"], recipe.LABEL_NAMES)
    total = time.perf_counter() - begin

    rows = []
    shared = min((r["iwae_n"] for r in results.values() if "nll" in r), default=0)
    for name, r in results.items():
        took = sci.minutes(r["seconds"] + r["eval_seconds"])
        if name == "ae":
            rows.append(
                f"| ae (MLP 784-400-20) | - | - | - | recon. {r['reconstruction']:.2f} nats; "
                f"{100 * r['pixel_error']:.2f} % pixels wrong; squared error {r['mse']:.1f} | "
                f"{r['epochs']:.0f} | {took} |"
            )
        else:
            first = r["per_example"][:shared]
            rows.append(
                f"| {name} | **{r['nll']:.2f}** ± {r['nll_se']:.2f} (n={r['iwae_n']}) | "
                f"{first.mean():.2f} ± {first.std() / math.sqrt(len(first)):.2f} | "
                f"{r['neg_elbo']:.2f} | | {r['epochs']:.0f} | {took} |"
            )
    compare = ""
    if "mlp-normal" in results and "mlp-mixture" in results:
        a, b = results["mlp-normal"]["per_example"], results["mlp-mixture"]["per_example"]
        d = b - a
        se = d.std() / math.sqrt(len(d))
        verdict = (
            "beats"
            if d.mean() < -2 * se
            else ("ties with" if abs(d.mean()) <= 2 * se else "loses to")
        )
        compare = (
            f"Paired on the same {len(d)} test images: NLL(mixture) - NLL(normal) = "
            f"{d.mean():+.2f} ± {se:.2f} nats, so the mixture prior {verdict} the standard "
            f"normal (|difference| > 2 standard errors counts)."
        )
        if "mlp-laplace" in results:
            dl = results["mlp-laplace"]["per_example"] - a
            compare += (
                f" NLL(laplace) - NLL(normal) = {dl.mean():+.2f} ± "
                f"{dl.std() / math.sqrt(len(dl)):.2f} nats."
            )
    print(compare)
    print(f"total {sci.minutes(total)}")
    body = f"""
Data: Fashion-MNIST (Debian `dataset-fashion-mnist`, via `datasets/fashion_mnist.py`), 60000
train / 10000 test, statically binarised once: pixel ~ Bernoulli(intensity/255) drawn with
`numpy.random.default_rng({args.seed})`. Every model: Bernoulli likelihood, latent_dim
{args.latent_dim}, Adam lr {args.lr}, batch {args.batch_size}, {args.epochs} epochs (CNN:
{args.cnn_epochs}; any model stops after the epoch that passes {args.minutes:g} min), trained
by `genlatent.Trainer` on the binarised HDF5 file (block-shuffle loader), seed {args.seed}.
Test NLL = mean of `-model.iwae_bound(x, k={args.k})` over the first n test images (an upper
bound on the NLL; subset to fit the CPU budget), ± its standard error; negative ELBO on the
whole test set. Total run {sci.minutes(total)}.

| model | test NLL, IWAE k={args.k} (nats) | the same, first {shared} images (all models) \
| test -ELBO, all 10000 (nats) | AE | epochs | time |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}

{compare}

MLP = 784-400-20 both ways (the seed's reference VAE); CNN = conv channels 32, 64 (stride 2)
both ways. The AE latent plot (test codes, first two principal components, coloured by
class) is `docs/science/fashion_mnist_ae_latent.png`.
"""
    if args.quick:
        print(body)
    if not args.no_report and not args.quick:
        import shutil

        from _report import write_section

        if "ae" in results:
            docs_png = sci.ROOT / "docs" / "science" / "fashion_mnist_ae_latent.png"
            docs_png.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(out_dir / "fashion_mnist_ae_latent.png", docs_png)
        write_section("fashion_mnist_nll", "Fashion-MNIST: test NLL by prior and network", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
