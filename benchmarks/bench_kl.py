"""Cost and variance of the Monte-Carlo KL against the closed form.

For a batch of diagonal-normal posteriors q (as a VAE encoder makes them) and three priors:

- normal || standard normal and normal || Laplace: closed form (the in-run baseline) and the
  Monte-Carlo estimate with S draws; time per call (forward, and forward + backward, medians)
  as a ratio to the closed form, and the estimator's standard deviation and bias per example
  against the exact value;
- normal || mixture of Gaussians: Monte-Carlo only (there is no closed form); its cost as a
  ratio to the normal closed form, and its standard deviation.

Run: ``python benchmarks/bench_kl.py [--batch 256 --latent 16 --repeats 100]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import write_section  # noqa: E402

from genlatent.distributions.kl import kl_divergence, monte_carlo_kl  # noqa: E402
from genlatent.distributions.posteriors import NormalPosterior  # noqa: E402
from genlatent.distributions.priors import LaplacePrior, MixturePrior, StandardNormalPrior  # noqa: E402


def median_seconds(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls (after 3 warm-up calls)."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def timings(flat: torch.Tensor, prior, estimator, repeats: int) -> tuple[float, float]:
    """(forward, forward + backward) median seconds of ``estimator(q, p).sum()``."""
    posterior = NormalPosterior(flat.shape[1] // 2)

    def forward() -> torch.Tensor:
        return estimator(posterior(flat), prior()).sum()

    def backward() -> None:
        flat.grad = None
        forward().backward()

    with torch.no_grad():
        fwd = median_seconds(forward, repeats)
    return fwd, median_seconds(backward, repeats)


def spread(flat: torch.Tensor, prior, samples: int, draws: int) -> torch.Tensor:
    """``draws`` independent S-sample estimates per example: ``(draws, B)``."""
    posterior = NormalPosterior(flat.shape[1] // 2)
    with torch.no_grad():
        q, p = posterior(flat), prior()
        return torch.stack([monte_carlo_kl(q, p, samples) for _ in range(draws)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--latent", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=100, help="timed calls per measurement")
    parser.add_argument("--draws", type=int, default=200, help="estimates for the variance")
    parser.add_argument("--samples", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    d = args.latent
    # Encoder-like outputs: locations ~ N(0, 1), scales around 0.5.
    flat = torch.cat([torch.randn(args.batch, d), torch.randn(args.batch, d) * 0.3 - 0.5], 1)
    flat.requires_grad_(True)
    priors = {
        "normal vs standard normal": StandardNormalPrior(d),
        "normal vs Laplace(0, 1)": LaplacePrior(d),
        "normal vs mixture (10 comp.)": MixturePrior(d, components=10),
    }

    def closed(q, p):
        return kl_divergence(q, p)

    baseline = priors["normal vs standard normal"]
    baseline_fwd, baseline_bwd = timings(flat, baseline, closed, args.repeats)
    rows = []
    for name, prior in priors.items():
        has_closed_form = "mixture" not in name
        if has_closed_form:
            fwd, bwd = timings(flat, prior, closed, args.repeats)
            with torch.no_grad():
                exact = kl_divergence(NormalPosterior(d)(flat), prior())
            rows.append((name, "closed form", fwd, bwd, 0.0, 0.0, exact.mean().item()))
        else:
            exact = None
        for s in args.samples:
            fwd, bwd = timings(flat, prior, lambda q, p, s=s: monte_carlo_kl(q, p, s), args.repeats)
            est = spread(flat, prior, s, args.draws)
            std = est.std(0).mean().item()
            bias = (est.mean(0) - exact).mean().item() if exact is not None else float("nan")
            rows.append((name, f"Monte-Carlo S={s}", fwd, bwd, std, bias, est.mean().item()))

    lines = [
        f"Batch {args.batch}, latent dim {d}, {args.threads} thread(s); times are medians of "
        f"{args.repeats} calls, ratios against the closed-form KL(normal || standard normal) "
        f"measured in the same run ({baseline_fwd * 1e6:.0f} us forward, "
        f"{baseline_bwd * 1e6:.0f} us forward + backward). std: standard deviation of one "
        f"estimate per example (nats), over {args.draws} estimates; bias: mean estimate minus "
        "the exact KL, averaged over examples (nats; should be ~0).",
        "",
        "| pair | method | fwd (us) | fwd x | fwd+bwd (us) | fwd+bwd x | mean KL | std | bias |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, method, fwd, bwd, std, bias, mean_kl in rows:
        lines.append(
            f"| {name} | {method} | {fwd * 1e6:.0f} | {fwd / baseline_fwd:.1f} | "
            f"{bwd * 1e6:.0f} | {bwd / baseline_bwd:.1f} | {mean_kl:.3f} | {std:.3f} | "
            f"{'n/a' if bias != bias else f'{bias:+.3f}'} |"
        )
    lines += [
        "",
        "Reading: the Monte-Carlo KL's standard deviation falls as 1/sqrt(S) and its bias is "
        "zero within noise; a VAE uses the closed form whenever one is registered and pays the "
        "Monte-Carlo cost only for priors without one (the mixture). One or a few draws cost "
        "1.5-5x the closed form; the jump at large S (temporaries of ~1 MiB and more) is "
        "memory traffic on this machine, not arithmetic: the single ops scale linearly.",
    ]
    body = "\n".join(lines)
    print(body)
    write_section("kl", "KL divergence: Monte-Carlo vs closed form", body)


if __name__ == "__main__":
    main()
