"""Molecule metrics where a chemist looks (the MOSES set): validity, uniqueness, novelty,
internal diversity, property distances, and reconstruction accuracy.

RDKit (the ``chem`` extra) parses and describes molecules; without it only the reconstruction
accuracy (exact string match) is available and :func:`molecule_metrics` says so. A string RDKit
cannot parse (or an empty one, e.g. a SELFIES that decoded to nothing) is counted as invalid,
never raised.

- ``validity``: share of the samples RDKit parses.
- ``uniqueness``: distinct canonical SMILES among the valid ones (``unique@n`` for ``n``
  samples, as MOSES reports unique@1000 and unique@10000).
- ``novelty``: share of those distinct molecules not in the training set (canonical SMILES).
- ``internal_diversity``: 1 - mean Tanimoto similarity of Morgan fingerprints (radius 2, 2048
  bits) over all pairs of valid samples (MOSES IntDiv1), on at most ``max_diversity`` of them.
- ``wasserstein_{mw,logp,qed}``: 1-D Wasserstein distance between the molecular weight, Crippen
  logP and QED of the valid samples and those of a reference set (MOSES reports these against
  its test set).
- ``reconstruction``: share of molecules whose greedy decode from the posterior mean is the
  same molecule (canonical SMILES with RDKit, else the same string).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

PROPERTIES = ("mw", "logp", "qed")
FINGERPRINT_BITS = 2048


def have_rdkit() -> bool:
    """Whether RDKit can be imported."""
    try:
        import rdkit  # noqa: F401
    except ImportError:
        return False
    return True


def _chem() -> Any:
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")  # one stderr line per invalid molecule otherwise
    return Chem


def parse(smiles: str) -> Any:
    """The RDKit molecule of a SMILES string, or None (empty, unparseable, or RDKit fails)."""
    if not smiles:
        return None
    try:
        return _chem().MolFromSmiles(smiles)
    except Exception:  # RDKit raises a few C++ errors as plain exceptions: count, never raise
        return None


def canonical(smiles: str) -> str | None:
    """RDKit canonical SMILES, or None when RDKit cannot parse ``smiles``."""
    mol = parse(smiles)
    if mol is None:
        return None
    try:
        return _chem().MolToSmiles(mol)
    except Exception:
        return None


def canonical_strings(smiles: Iterable[str]) -> list[str]:
    """Canonical SMILES of each string, ``""`` for those RDKit cannot parse."""
    return [canonical(s) or "" for s in smiles]


def wasserstein_1d(a: Sequence[float], b: Sequence[float]) -> float:
    """Wasserstein-1 distance between two empirical 1-D distributions (area between CDFs)."""
    a = np.sort(np.asarray(a, dtype=np.float64))
    b = np.sort(np.asarray(b, dtype=np.float64))
    if a.size == 0 or b.size == 0:
        return float("nan")
    values = np.concatenate([a, b])
    values.sort()
    deltas = np.diff(values)
    cdf_a = np.searchsorted(a, values[:-1], side="right") / a.size
    cdf_b = np.searchsorted(b, values[:-1], side="right") / b.size
    return float(np.sum(np.abs(cdf_a - cdf_b) * deltas))


def properties(mols: Sequence[Any]) -> dict[str, np.ndarray]:
    """Molecular weight, Crippen logP and QED of RDKit molecules (NaN where RDKit fails)."""
    from rdkit.Chem import QED, Crippen, Descriptors

    out = {name: np.full(len(mols), np.nan) for name in PROPERTIES}
    for i, mol in enumerate(mols):
        try:
            out["mw"][i] = Descriptors.MolWt(mol)
            out["logp"][i] = Crippen.MolLogP(mol)
            out["qed"][i] = QED.qed(mol)
        except Exception:
            continue
    return out


def internal_diversity(mols: Sequence[Any], max_molecules: int = 1000) -> float:
    """1 - mean pairwise Tanimoto similarity of Morgan fingerprints (radius 2), over all
    ordered pairs of the first ``max_molecules`` molecules (MOSES IntDiv1)."""
    from rdkit import DataStructs
    from rdkit.Chem import rdFingerprintGenerator

    mols = list(mols)[:max_molecules]
    if len(mols) < 2:
        return float("nan")
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=FINGERPRINT_BITS)
    fps = [generator.GetFingerprint(m) for m in mols]
    total = 0.0
    for fp in fps:
        total += float(np.sum(DataStructs.BulkTanimotoSimilarity(fp, fps)))
    return 1.0 - total / (len(fps) * len(fps))


def molecule_metrics(
    samples: Sequence[str],
    *,
    train: Iterable[str] | None = None,
    reference: Sequence[str] | None = None,
    max_diversity: int = 1000,
) -> dict[str, Any]:
    """The sample metrics of the module docstring for SMILES ``samples``.

    ``train`` (canonical SMILES, or strings to canonicalise first) enables novelty;
    ``reference`` (SMILES) enables the property distances. Without RDKit: only counts and a
    ``note``.
    """
    n = len(samples)
    out: dict[str, Any] = {"samples": n}
    if not have_rdkit():
        out["note"] = "validity, novelty, diversity, properties need RDKit: pip install rdkit"
        return out
    mols = [parse(s) for s in samples]
    valid = [(m, _chem().MolToSmiles(m)) for m in mols if m is not None]
    distinct = {smi: m for m, smi in valid}
    out["valid"] = len(valid)
    out["validity"] = len(valid) / n if n else float("nan")
    out[f"unique@{n}"] = len(distinct) / len(valid) if valid else float("nan")
    if train is not None:
        train_set = train if isinstance(train, (set, frozenset)) else set(train)
        novel = [s for s in distinct if s not in train_set]
        out["novelty"] = len(novel) / len(distinct) if distinct else float("nan")
    out["internal_diversity"] = internal_diversity([m for m, _ in valid], max_diversity)
    if reference is not None:
        ref_mols = [m for m in (parse(s) for s in reference) if m is not None]
        mine, theirs = properties([m for m, _ in valid]), properties(ref_mols)
        for name in PROPERTIES:
            a, b = mine[name], theirs[name]
            out[f"wasserstein_{name}"] = wasserstein_1d(a[np.isfinite(a)], b[np.isfinite(b)])
    return out


def same_molecule(decoded: Sequence[str], targets: Sequence[str]) -> list[bool]:
    """Whether each decoded string is its target's molecule: canonical SMILES compared with
    RDKit (an unparseable decode is a miss), the strings themselves without it."""
    if not have_rdkit():
        return [a == b for a, b in zip(decoded, targets, strict=True)]
    hits = []
    for a, b in zip(decoded, targets, strict=True):
        target = canonical(b)
        hits.append(target is not None and canonical(a) == target)
    return hits


def training_smiles(path: str, limit: int = 200_000) -> set[str]:
    """Canonical SMILES of a training file's molecules (its ``smiles`` strings, else its
    decoded token ids). Files over ``limit`` rows are taken as stored (canonicalising
    millions of molecules takes minutes; the MOSES training strings are canonical already)."""
    from ..data import open_dataset
    from ..data.h5 import open_h5

    with open_h5(path) as f:
        stored = [s.decode("utf-8", "replace") for s in f["smiles"][()]] if "smiles" in f else None
    if stored is None:
        dataset = open_dataset(path, None)
        stored = decoded_dataset(dataset)
    if len(stored) > limit or not have_rdkit():
        return set(stored)
    return {c for c in canonical_strings(stored) if c}


def decoded_dataset(dataset: Any, limit: int | None = None) -> list[str]:
    """The molecules of a token dataset as SMILES (SELFIES decoded), in row order."""
    from .h5out import decode_tokens
    from .inference import iter_batches

    out: list[str] = []
    for batch in iter_batches(dataset, 1024, "cpu", limit):
        out += decode_tokens(dataset.spec, batch["x"].numpy())
    return out


def reconstruction_accuracy(
    model: Any, dataset: Any, *, limit: int | None = 1000, batch_size: int = 256
) -> float:
    """Share of the first ``limit`` molecules of ``dataset`` whose greedy decode from the
    posterior mean is the same molecule (see :func:`same_molecule`)."""
    from .h5out import decode_tokens
    from .inference import reconstruct_dataset

    result = reconstruct_dataset(
        model, dataset, batch_size=batch_size, device=model.device, limit=limit
    )
    decoded = decode_tokens(model.data, result["x"])
    targets = decoded_dataset(dataset, limit)
    hits = same_molecule(decoded, targets)
    return sum(hits) / len(hits) if hits else float("nan")


def evaluate_molecules(
    model: Any,
    dataset: Any,
    *,
    samples: int = 1000,
    temperature: float = 1.0,
    train_path: str | None = None,
    reference_limit: int = 10_000,
    reconstruct_limit: int = 1000,
    batch_size: int = 256,
) -> dict[str, Any]:
    """Everything above for a token model: ``samples`` molecules from the prior (sampled at
    ``temperature``) scored against ``dataset`` (properties, first ``reference_limit`` rows)
    and the training file ``train_path`` (novelty); reconstruction accuracy on the first
    ``reconstruct_limit`` rows of ``dataset``."""
    from .h5out import decode_tokens
    from .inference import sample_prior

    drawn = sample_prior(model, samples, temperature=temperature, batch_size=batch_size)
    smiles = decode_tokens(model.data, drawn["x"])
    train = training_smiles(train_path) if train_path and have_rdkit() else None
    reference = decoded_dataset(dataset, reference_limit) if have_rdkit() else None
    out = molecule_metrics(smiles, train=train, reference=reference)
    out["temperature"] = float(temperature)
    out["reconstruction"] = reconstruction_accuracy(
        model, dataset, limit=reconstruct_limit, batch_size=batch_size
    )
    out["reconstructed"] = min(len(dataset), reconstruct_limit)
    out["examples"] = [s for s in smiles if s][:5]
    return out


def format_metrics(metrics: dict[str, Any]) -> list[str]:
    """Lines for ``genlatent evaluate``'s text output."""
    lines = []
    for key, value in metrics.items():
        if key in ("examples", "note"):
            continue
        text = f"{value:.4f}" if isinstance(value, float) else str(value)
        lines.append(f"{key:<24}{text:>10}")
    if metrics.get("note"):
        lines.append(f"note: {metrics['note']}")
    return lines


def training_path(run: str) -> str | None:
    """The training file recorded in a run folder's ``config.json`` (None if unknown or gone)."""
    from pathlib import Path

    from .runs import CONFIG_FILE, read_json, run_dir

    folder = run_dir(Path(run))
    if folder is None or not (folder / CONFIG_FILE).is_file():
        return None
    path = (read_json(folder / CONFIG_FILE).get("data") or {}).get("path")
    return str(path) if path and Path(path).is_file() else None


def canonical_smiles_array(strings: tuple[np.ndarray, dict[str, Any]]) -> tuple:
    """``genlatent sample --canonical``: an output file's ``strings`` dataset (bytes, attrs)
    as canonical SMILES (``""`` where RDKit cannot parse); a one-line error without RDKit."""
    from ..errors import GenlatentError
    from .h5out import fixed_bytes

    if not have_rdkit():
        raise GenlatentError("--canonical needs RDKit: pip install 'genlatent[chem]'")
    values, attrs = strings
    text = [v.decode("utf-8", "replace") for v in values]
    return fixed_bytes(canonical_strings(text)), {**attrs, "canonical": "rdkit"}
