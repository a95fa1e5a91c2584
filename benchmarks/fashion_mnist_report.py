"""The latent-space report on Fashion-MNIST, from the command line, with its headline numbers.

Trains the Quick-start VAE (CNN, 16 latents, Bernoulli, lr 3e-3) and the plain AE with the
same networks on the 2000 bundled training images, then runs ``genlatent report`` on the 500
bundled test images with PCA fitted on the training images (the fair comparison), and writes
the headline numbers of both reports to BENCHMARKS.md (section ``fashion_mnist_report``).
Everything goes through the ``genlatent`` commands, as a user would run them:

    genlatent train datasets/samples/fashion_mnist_2k.h5 --epochs 10 --lr 3e-3 --out R/vae
    genlatent report R/vae datasets/samples/fashion_mnist_test_500.h5 \\
        --pca-fit datasets/samples/fashion_mnist_2k.h5 --out R/vae/report

    python benchmarks/fashion_mnist_report.py            # ~10 min on 2 free CPU cores
    python benchmarks/fashion_mnist_report.py --quick    # smoke run (1 epoch, no section)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAIN = "datasets/samples/fashion_mnist_2k.h5"  # relative to ROOT, where the commands run
TEST = "datasets/samples/fashion_mnist_test_500.h5"


def genlatent(*args: object) -> float:
    """Run ``genlatent ARGS`` in a subprocess (progress passes through); its seconds."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "genlatent.cli", *map(str, args)], check=True, cwd=ROOT
    )
    return time.perf_counter() - start


def headline(numbers: dict) -> dict[str, object]:
    comp, cont = numbers["compression"], numbers["continuity"]
    complete = numbers.get("completeness") or {}
    trip = complete.get("round_trip") or {}
    agg = complete.get("aggregate_posterior") or {}
    over = numbers.get("overfitting") or {}
    return {
        "model_sq_error": comp["model"],
        "pca_sq_error": comp["pca"],
        "pca_in_sample": comp["pca_in_sample"],
        "better_than_pca": comp["model_better_by"],
        "trust10": cont["trustworthiness"]["10"],
        "cont10": cont["continuity"]["10"],
        "round_trip_ratio": trip.get("ratio"),
        "beyond95": trip.get("fraction_beyond_data_95th_percentile"),
        "kl_agg": agg.get("gaussian_kl_to_prior"),
        "mmd2": agg.get("mmd2"),
        "mmd2_noise": agg.get("mmd2_prior_vs_prior"),
        "gap": over.get("last_gap"),
        "active": f"{numbers['active_units']['count']}/{numbers['active_units']['of']}",
        "neg_elbo": numbers["fit"].get("neg_elbo"),
    }


def _f(value: object, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", nargs="+", default=["vae", "ae"], choices=["vae", "ae"])
    parser.add_argument("--out", default=str(ROOT / "runs" / "fashion_mnist_report"))
    parser.add_argument("--quick", action="store_true", help="1 epoch; no BENCHMARKS.md section")
    parser.add_argument("--no-report", action="store_true", help="no BENCHMARKS.md section")
    args = parser.parse_args(argv)
    epochs = 1 if args.quick else args.epochs
    out = Path(args.out)
    results, seconds = {}, {}
    for name in args.models:
        run = out / name
        train_s = genlatent(
            "train", TRAIN, "--model", name, "--epochs", epochs, "--lr", args.lr,
            "--seed", args.seed, "--device", args.device, "--out", run, "--overwrite",
        )
        report_s = genlatent(
            "report", run, TEST, "--pca-fit", TRAIN, "--seed", args.seed,
            "--device", args.device, "--out", run / "report",
        )
        numbers = json.loads((run / "report" / "report.json").read_text())
        results[name] = headline(numbers)
        seconds[name] = (train_s, report_s)
        print(name, json.dumps(results[name]), flush=True)
    if args.quick or args.no_report:
        return 0
    lines = [
        f"CNN encoder/decoder (the CLI defaults), 16 latents, Bernoulli likelihood, Adam lr "
        f"{args.lr}, {epochs} epochs on the 2000 images of `fashion_mnist_2k.h5`, seed "
        f"{args.seed}; report on the 500 images of `fashion_mnist_test_500.h5`, PCA fitted on "
        "the 2000 training images (also in sample, on the 500 test images). Squared error: "
        "per image, summed over the 784 pixels in [0, 1]. Trustworthiness / continuity over "
        "10 neighbours (1 perfect, 0.5 random codes). Round trip: median distance of "
        "encode(decode(z ~ prior)) to the nearest test code over the test codes' own "
        "nearest-neighbour distance (1: prior samples land where data sits).",
        "",
        "| model | sq. error | PCA (train fit) | PCA (in sample) | vs PCA | trust. | contin. "
        "| round trip | beyond 95% | KL(q(z) ‖ p) | MMD² (noise) | val-train gap | active "
        "| train s | report s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        better = r["better_than_pca"]
        lines.append(
            f"| {name} | {r['model_sq_error']:.2f} | {r['pca_sq_error']:.2f} | "
            f"{r['pca_in_sample']:.2f} | {abs(better):.0%} {'better' if better >= 0 else 'worse'}"
            f" | {r['trust10']:.3f} | {r['cont10']:.3f} | {_f(r['round_trip_ratio'], '.2f')} | "
            f"{_f(r['beyond95'], '.0%')} | {_f(r['kl_agg'], '.2f')} | "
            f"{_f(r['mmd2'], '.4f')} ({_f(r['mmd2_noise'], '.1e')}) | {_f(r['gap'], '+.2f')} | "
            f"{r['active']} | {seconds[name][0]:.0f} | {seconds[name][1]:.0f} |"
        )
    lines += [
        "",
        f"The pages: `{out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}/"
        "<model>/report/report.html` (see docs/science.md).",
    ]
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _report import write_section

    write_section("fashion_mnist_report", "Fashion-MNIST: latent-space report", "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
