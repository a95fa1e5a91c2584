"""2-D Ising model configurations by our own Monte-Carlo, written to HDF5 for genlatent.

Why our own: the Ising benchmark (``benchmarks/ising_vae.py``) asks whether a VAE finds the
order parameter and the phase transition without being told; that needs equilibrium samples
that we can check against exact results (``tests/test_ising.py`` compares with Onsager).

Sampler, vectorised over every chain at once (one or more chains per temperature):

- a Swendsen-Wang cluster update: bonds between equal neighbours are kept with probability
  ``1 - exp(-2/T)``, clusters are found with ``scipy.sparse.csgraph.connected_components`` (all
  chains form one block-diagonal graph) and each cluster flips with probability 1/2. Cluster
  updates beat critical slowing down near Tc and flip the sign of ordered states below Tc,
  so both signs of the magnetisation are sampled;
- followed by one checkerboard Metropolis sweep (local moves, cheap, helps at high T).

One "sweep" below is one of each. Chains start from random spins, run ``equilibrate`` sweeps,
then store one configuration every ``decorrelate`` sweeps.

File layout (rows pre-shuffled with the seed, contiguous and uncompressed)::

    x              (N, 1, L, L) uint8   spins as {0, 1}: 1 is spin up (+1), 0 spin down (-1);
                                        attrs kind = "grids", scale = 1
    temperature    (N,) float32         in units of J / k_B
    magnetisation  (N,) float32         signed, per site, in [-1, 1]
    energy         (N,) float32         per site, J = 1, periodic boundaries
    attrs: genlatent_format, shuffled, labels (JSON list of the three above), L, seed,
           sweeps, equilibrate, decorrelate, chains_per_temperature, spin_encoding,
           generator, temperatures (the grid)

Command line::

    python datasets/ising.py --out data/ising_L32.h5 --size 32 --temperatures 32 --samples 500
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

TC = 2.0 / math.log(1.0 + math.sqrt(2.0))  # Onsager: 2.26918...
LABELS = ("temperature", "magnetisation", "energy")
SPIN_ENCODING = "x = (s + 1) / 2: 1 is spin up (+1), 0 is spin down (-1)"


def temperature_grid(n: int = 32, t_min: float = 1.0, t_max: float = 4.0) -> np.ndarray:
    """``n`` temperatures in ``[t_min, t_max]``, denser near Tc.

    Half of the points are spread evenly, half follow a normal-quantile spacing centred on Tc
    (scale 0.35), so the transition region is resolved without leaving gaps elsewhere.
    """
    if n < 2:
        raise ValueError(f"need at least 2 temperatures, got {n}")
    n_even = n - n // 2
    even = np.linspace(t_min, t_max, n_even)
    # Probit-spaced points around Tc; clip into the range.
    from statistics import NormalDist

    q = (np.arange(n // 2) + 0.5) / max(n // 2, 1)
    dense = np.array([TC + 0.35 * NormalDist().inv_cdf(float(p)) for p in q])
    grid = np.unique(np.clip(np.concatenate([even, dense]), t_min, t_max).round(6))
    return grid.astype(np.float64)


class IsingSampler:
    """Many independent periodic L x L Ising chains, each at its own temperature."""

    def __init__(self, size: int, temperatures: np.ndarray, rng: np.random.Generator) -> None:
        from scipy.sparse import coo_matrix  # noqa: F401  (fail early if scipy is missing)

        self.size = int(size)
        self.temperatures = np.asarray(temperatures, dtype=np.float64)
        self.rng = rng
        n = len(self.temperatures)
        self.spins = rng.choice(np.array([-1, 1], dtype=np.int8), size=(n, size, size))
        beta = 1.0 / self.temperatures
        self._p_bond = (1.0 - np.exp(-2.0 * beta))[:, None, None]
        # Metropolis acceptance exp(-beta * dE) for dE = 2 s h, h in {-4,-2,0,2,4}: table by h.
        self._accept = np.exp(-2.0 * beta[:, None] * np.array([-4, -2, 0, 2, 4])[None, :])
        idx = np.arange(n * size * size).reshape(n, size, size)
        self._idx = idx
        self._right = np.roll(idx, -1, axis=2)
        self._down = np.roll(idx, -1, axis=1)
        colour = (np.add.outer(np.arange(size), np.arange(size)) % 2).astype(bool)
        self._colours = (~colour, colour)
        self._chain = np.repeat(np.arange(n), size * size).reshape(n, size, size)

    def swendsen_wang(self) -> None:
        """One cluster update of every chain."""
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        s = self.spins
        right = (s == np.roll(s, -1, axis=2)) & (self.rng.random(s.shape) < self._p_bond)
        down = (s == np.roll(s, -1, axis=1)) & (self.rng.random(s.shape) < self._p_bond)
        rows = np.concatenate([self._idx[right], self._idx[down]])
        cols = np.concatenate([self._right[right], self._down[down]])
        total = s.size
        graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(total, total))
        n_clusters, labels = connected_components(graph, directed=False)
        flip = self.rng.random(n_clusters) < 0.5
        sign = np.where(flip[labels], -1, 1).astype(np.int8).reshape(s.shape)
        self.spins = s * sign

    def metropolis(self) -> None:
        """One checkerboard Metropolis sweep of every chain (both sublattices)."""
        for colour in self._colours:
            s = self.spins
            h = (
                np.roll(s, 1, axis=1)
                + np.roll(s, -1, axis=1)
                + np.roll(s, 1, axis=2)
                + np.roll(s, -1, axis=2)
            )
            local = (s * h).astype(np.int64)  # dE = 2 * local, local in {-4,...,4} step 2
            p = self._accept[self._chain, (local + 4) // 2]
            flip = colour[None] & (self.rng.random(s.shape) < p)
            self.spins = np.where(flip, -s, s).astype(np.int8)

    def sweep(self, n: int = 1) -> None:
        for _ in range(n):
            self.swendsen_wang()
            self.metropolis()

    def observables(self) -> tuple[np.ndarray, np.ndarray]:
        """Signed magnetisation and energy per site of every chain."""
        return observables(self.spins)


def observables(spins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Signed magnetisation and energy per site (J = 1, periodic) of configurations
    ``(N, L, L)`` with spins in {-1, +1}: simulated ones, or ones a model generated."""
    s = np.asarray(spins, dtype=np.float64)
    m = s.mean(axis=(1, 2))
    e = -(s * (np.roll(s, -1, axis=1) + np.roll(s, -1, axis=2))).mean(axis=(1, 2))
    return m, e


def simulate(
    size: int = 32,
    temperatures: np.ndarray | None = None,
    samples: int = 500,
    *,
    chains_per_temperature: int = 4,
    equilibrate: int = 200,
    decorrelate: int = 10,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Equilibrium configurations: ``samples`` per temperature.

    Returns ``spins`` (N, L, L) int8 in {-1, 1}, ``temperature``, ``magnetisation`` and
    ``energy`` (N,), in temperature order (not shuffled).
    """
    if temperatures is None:
        temperatures = temperature_grid()
    temperatures = np.asarray(temperatures, dtype=np.float64)
    if samples < 1 or chains_per_temperature < 1:
        raise ValueError("samples and chains_per_temperature must be positive")
    rng = np.random.default_rng(seed)
    per_chain = math.ceil(samples / chains_per_temperature)
    chain_t = np.repeat(temperatures, chains_per_temperature)
    sampler = IsingSampler(size, chain_t, rng)
    sampler.sweep(equilibrate)
    spins, mags, energies = [], [], []
    for _ in range(per_chain):
        sampler.sweep(decorrelate)
        m, e = sampler.observables()
        spins.append(sampler.spins.copy())
        mags.append(m)
        energies.append(e)
    # (per_chain, chains, ...) -> group by temperature, keep `samples` per temperature.
    spins_a = np.stack(spins, axis=1)  # (chains, per_chain, L, L)
    n_t = len(temperatures)
    spins_a = spins_a.reshape(n_t, chains_per_temperature * per_chain, size, size)[:, :samples]
    m_a = np.stack(mags, axis=1).reshape(n_t, -1)[:, :samples]
    e_a = np.stack(energies, axis=1).reshape(n_t, -1)[:, :samples]
    return {
        "spins": spins_a.reshape(-1, size, size),
        "temperature": np.repeat(temperatures, samples).astype(np.float32),
        "magnetisation": m_a.reshape(-1).astype(np.float32),
        "energy": e_a.reshape(-1).astype(np.float32),
        "sweeps": np.int64(equilibrate + per_chain * decorrelate),
    }


def write_h5(path: str | Path, result: dict[str, np.ndarray], *, seed: int, **attrs) -> Path:
    """Write ``result`` (from :func:`simulate`) atomically in genlatent's training-file layout
    (through :func:`genlatent.data.importers.write_h5`), rows shuffled with ``seed + 1``."""
    from genlatent.data.importers import write_h5 as write_training_file

    spins = result["spins"]
    size = spins.shape[1]
    x = ((spins + 1) // 2).astype(np.uint8)[:, None]
    return write_training_file(
        path,
        x,
        labels={key: np.asarray(result[key]) for key in LABELS},
        # scale 1: the {0, 1} spins are read as they are
        attrs={"kind": "grids", "scale": 1.0},
        root_attrs={
            "source": "datasets/ising.py",
            "L": size,
            "seed": seed,
            "sweeps": int(result["sweeps"]),
            "spin_encoding": SPIN_ENCODING,
            "generator": "genlatent datasets/ising.py: Swendsen-Wang + Metropolis",
            "temperatures": np.unique(result["temperature"]).astype(np.float64),
            **attrs,
        },
        shuffle=True,
        seed=seed + 1,
    )


# ----------------------------------------------------------------------------- exact results


def onsager_magnetisation(t: np.ndarray | float) -> np.ndarray:
    """Spontaneous magnetisation per site of the infinite lattice (0 above Tc)."""
    t = np.asarray(t, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        m = (1.0 - np.sinh(2.0 / t) ** -4) ** 0.125
    return np.where(t < TC, m, 0.0)


def onsager_energy(t: np.ndarray | float) -> np.ndarray:
    """Energy per site of the infinite lattice, J = 1 (Onsager 1944)."""
    from scipy.special import ellipk

    beta = 1.0 / np.asarray(t, dtype=np.float64)
    k = 2.0 * np.sinh(2 * beta) / np.cosh(2 * beta) ** 2
    elliptic = ellipk(np.minimum(k**2, 1.0))  # scipy's argument is the parameter m = k^2
    with np.errstate(invalid="ignore"):
        term = (2.0 * np.tanh(2 * beta) ** 2 - 1.0) * elliptic
    # At Tc, k = 1: (2 tanh^2 - 1) -> 0 faster than K diverges (log), so the product is 0.
    term = np.where(np.isfinite(term), term, 0.0)
    return -1.0 / np.tanh(2 * beta) * (1.0 + (2.0 / np.pi) * term)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="data/ising_L32.h5", help="HDF5 file to write")
    parser.add_argument("--size", type=int, default=32, help="lattice side L (default 32)")
    parser.add_argument("--temperatures", type=int, default=32, help="grid points in [1, 4]")
    parser.add_argument("--samples", type=int, default=500, help="configurations per temperature")
    parser.add_argument("--chains", type=int, default=4, help="independent chains per temperature")
    parser.add_argument("--equilibrate", type=int, default=200, help="sweeps before sampling")
    parser.add_argument("--decorrelate", type=int, default=10, help="sweeps between samples")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    grid = temperature_grid(args.temperatures)
    result = simulate(
        args.size,
        grid,
        args.samples,
        chains_per_temperature=args.chains,
        equilibrate=args.equilibrate,
        decorrelate=args.decorrelate,
        seed=args.seed,
    )
    write_h5(
        args.out,
        result,
        seed=args.seed,
        equilibrate=args.equilibrate,
        decorrelate=args.decorrelate,
        chains_per_temperature=args.chains,
    )
    took = time.perf_counter() - start
    print(
        f"wrote {args.out}: {len(result['temperature'])} configurations, L={args.size}, "
        f"{len(grid)} temperatures in [{grid[0]:.3f}, {grid[-1]:.3f}], {took:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    raise SystemExit(main())
