"""MOSES molecules: genlatent's CLI-default GRU VAE on a time budget, scored like MOSES.

Data: the MOSES benchmark split (1,584,663 train / 176,074 test molecules) from the
``molsets`` wheel, tokenised by the recipe ``datasets/moses_smiles.py`` as SELFIES or SMILES
(the test split with the training vocabulary). Made on the first run and reused. By default a
random 100,000 training and 10,000 test molecules (``--rows``, ``--test-rows``; 0 for all):
a CPU budget of minutes sees far fewer than 100,000 molecules, and encoding all 1.6 M as
SELFIES takes long on a shared 2-core machine. Novelty is always measured against the
whole training split.

Training goes through the command line exactly as a user runs it::

    genlatent train moses_selfies_train.h5 --latent-dim 32 --val-fraction 0 \
        --set train.max_time=30m --out runs/science/moses_selfies

so the model, objective and optimiser are the CLI's defaults for token data (GRU encoder and
decoder, word dropout, free bits, cyclical KL weight; see docs/science.md), with ``--set``
for anything changed (e.g. the larger GPU model below). The Trainer stops at the time budget
with a checkpoint and the saved model.

Scores, with the public API (``genlatent.analysis.molecules``, RDKit):
- ``--samples`` (1000) molecules drawn from the prior (decoder sampling at temperature 1):
  validity, unique@1000 (and unique@N), novelty against the whole training split, internal
  diversity, Wasserstein distances of MW / logP / QED to ``--eval-n`` (2000) test molecules;
  the same distances for as many training molecules give the floor set by the data;
- validation KL and reconstruction NLL (nats per molecule) on those test molecules;
- reconstruction accuracy: greedy decodes of their posterior means that are the same
  molecule (canonical SMILES).

    python benchmarks/moses_vae.py --encoding selfies --minutes 30    # CPU, 30 min
    python benchmarks/moses_vae.py --encoding smiles --minutes 30
    python benchmarks/moses_vae.py --quick                            # smoke run, 2k sample
    # GPU, 1 hour, a model the size of the published MOSES VAE:
    python benchmarks/moses_vae.py --encoding selfies --minutes 60 --device cuda \
        --latent-dim 128 --batch-size 512 --lr 1e-3 --section moses_vae_gpu \
        --set encoder.hidden_size=256 --set encoder.bidirectional=true \
        --set decoder.hidden_size=512 --set decoder.num_layers=3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _science as sci  # noqa: E402

import genlatent  # noqa: E402
from genlatent.analysis import molecules as mol  # noqa: E402
from genlatent.analysis.h5out import decode_tokens  # noqa: E402
from genlatent.analysis.inference import evaluate, sample_prior  # noqa: E402
from genlatent.analysis.runs import read_metrics  # noqa: E402
from genlatent.data import open_dataset  # noqa: E402

# Polykovskiy et al. (2020), MOSES, Table 2 (VAE, 30,000 samples): validity, unique@1k,
# unique@10k, internal diversity, novelty.
PUBLISHED = {
    "validity": 0.977,
    "unique@1000": 1.0,
    "unique@10000": 0.998,
    "internal_diversity": 0.856,
    "novelty": 0.695,
}
# The same VAE's Wasserstein-1 distances of molecular weight, logP and QED to the MOSES test
# set (30,000 samples), from the legends of the property plots the MOSES repository publishes
# with its results (README.md, images/weight.png, logP.png, QED.png).
PUBLISHED_W1 = {"mw": 1.8, "logp": 0.023, "qed": 0.0006}


def prepare(
    folder: Path, encoding: str, quick: bool, rows: int | None, test_rows: int | None
) -> tuple[Path, Path]:
    """The train/test token files, made by the data recipe when missing."""
    if quick:  # the 2k sample CSV, imported into a scratch folder
        folder.mkdir(parents=True, exist_ok=True)
        train, test = folder / f"quick_{encoding}_train.h5", folder / f"quick_{encoding}_test.h5"
        samples = sci.ROOT / "datasets" / "samples"
        cli("data", "import", "smiles", str(samples / "moses_train_2k.csv"), "--out", str(train),
            "--encoding", encoding)  # fmt: skip
        cli("data", "import", "smiles", str(samples / "moses_test_200.csv"), "--out", str(test),
            "--vocab-from", str(train), "--allow-unknown")  # fmt: skip
        return train, test
    stem = ("moses" if encoding == "smiles" else f"moses_{encoding}") + (
        f"_{rows // 1000}k" if rows else ""
    )
    train, test = folder / f"{stem}_train.h5", folder / f"{stem}_test.h5"
    if not (train.exists() and test.exists()):
        extra = ["--rows", str(rows)] if rows else []
        extra += ["--test-rows", str(test_rows)] if test_rows else []
        sci.load_recipe("moses_smiles").main(
            ["--out", str(folder), "--encoding", encoding, *extra]
        )
    return train, test


def full_training_set(quick: bool, train_path: Path) -> set[str]:
    """Canonical SMILES of the whole MOSES training split (its stored strings are RDKit
    canonical already), whatever subset the model was trained on; ``--quick``: the sample."""
    if quick:
        return mol.training_smiles(str(train_path), limit=10**9)
    from genlatent.data.importers import read_smiles_file

    folder = sci.load_recipe("moses_smiles").moses_data_dir()
    return set(read_smiles_file(folder / "train.csv.gz")[0])


def cli(*args: str, threads: int | None = None) -> None:
    """Run ``genlatent ARGS`` (this checkout's package) and fail loudly if it fails."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(sci.ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    command = [sys.executable, "-m", "genlatent.cli", *args]
    print("$ genlatent " + " ".join(args), flush=True)
    subprocess.run(command, check=True, env=env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sci.common_flags(parser, epochs=100, minutes=30.0)
    parser.add_argument("--encoding", choices=["selfies", "smiles"], default="selfies")
    parser.add_argument("--data", default=str(sci.ROOT / "runs" / "science"))
    parser.add_argument("--latent-dim", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--steps", type=int, default=None, help="stop after N steps instead")
    parser.add_argument(
        "--rows", type=int, default=100_000, help="train on a random subset (0: all 1.58 M)"
    )
    parser.add_argument("--test-rows", type=int, default=10_000, help="test subset (0: all)")
    parser.add_argument("--samples", type=int, default=1000, help="molecules from the prior")
    parser.add_argument(
        "--eval-n", type=int, default=2000, help="test molecules for KL, properties, recon."
    )
    parser.add_argument(
        "--set", dest="settings", action="append", default=[], help="passed to genlatent train"
    )
    parser.add_argument("--section", default=None, help="BENCHMARKS.md section name")
    parser.add_argument(
        "--score-only", action="store_true", help="score the model the run folder holds already"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.samples, args.eval_n = args.steps or 30, 100, 100
    section = args.section or f"moses_vae_{args.encoding}"
    device = sci.setup(args)
    begin = time.perf_counter()
    train_path, test_path = prepare(
        Path(args.data), args.encoding, args.quick, args.rows or None, args.test_rows or None
    )
    run = Path(args.out or sci.ROOT / "runs" / "science") / (section + ("_quick" * args.quick))

    budget = (
        ["--set", f"train.max_steps={args.steps}"]
        if args.steps
        else ["--set", f"train.max_time={args.minutes:g}m"]
    )
    settings = [x for s in args.settings for x in ("--set", s)]
    if not args.score_only:
        cli("train", str(train_path), "--latent-dim", str(args.latent_dim), "--val-fraction",
            "0", "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--lr",
            str(args.lr), "--device", args.device, "--seed", str(args.seed), *budget, *settings,
            "--set", "train.checkpoint_every=epoch", "--no-plots", "--out", str(run),
            "--overwrite", threads=args.threads)  # fmt: skip
    trained_s = time.perf_counter() - begin
    history = read_metrics(run)
    if args.score_only and history:  # the Trainer's own clock of the earlier run
        trained_s = float(history[-1].get("elapsed", 0.0))
    model = genlatent.load(run / "model", map_location=str(device))
    model.eval()

    start = time.perf_counter()
    test = open_dataset(str(test_path), None)
    held_out = test.subset(0, min(args.eval_n, len(test)))
    torch.manual_seed(args.seed)
    nats = evaluate(model, held_out, iwae_samples=0, batch_size=500, device=device)
    torch.manual_seed(args.seed)
    drawn = sample_prior(model, args.samples, temperature=1.0, batch_size=1000)
    smiles = decode_tokens(model.data, drawn["x"])
    train_set = full_training_set(args.quick, train_path)
    reference = mol.decoded_dataset(held_out)
    scores = mol.molecule_metrics(smiles, train=train_set, reference=reference)
    scores["unique@1000"] = mol.molecule_metrics(smiles[:1000]).get(
        f"unique@{min(1000, len(smiles))}", float("nan")
    )
    scores["examples"] = [s for s in smiles if mol.canonical(s)][:5]
    recon = mol.reconstruction_accuracy(model, held_out, limit=len(held_out), batch_size=500)
    rng = np.random.default_rng(args.seed)
    train_data = open_dataset(str(train_path), None)
    rows = np.sort(rng.choice(len(train_data), size=min(args.eval_n, len(train_data)),
                              replace=False))  # fmt: skip
    train_sample = [mol.canonical(s) or s for s in decoded_rows(train_data, rows)]
    floor = mol.molecule_metrics(train_sample, reference=reference)
    eval_s = time.perf_counter() - start

    last = history[-1] if history else {}
    steps = int(last.get("step", 0) or 0)
    n_params = sum(p.numel() for p in model.parameters())
    result = {
        "encoding": args.encoding, "steps": steps, "epochs": last.get("epoch"),
        "train_seconds": trained_s, "val_kl": nats["kl"], "val_reconstruction":
        nats["reconstruction"], "reconstruction_accuracy": recon, **scores,
        "data_floor": {k: v for k, v in floor.items() if k.startswith("wasserstein")},
    }  # fmt: skip
    print(json.dumps(result, indent=1, default=str))
    if not args.no_report and not args.quick:
        from _report import write_section

        write_section(section, f"MOSES: GRU VAE on {args.encoding.upper()}, "
                      f"{args.minutes:g}-minute budget through the CLI", report(
                          args, result, floor, history, n_params, len(train_data), len(test),
                          model, eval_s))  # fmt: skip
    return 0


def decoded_rows(dataset, rows: np.ndarray) -> list[str]:
    """SMILES of the given rows of a token dataset."""
    out: list[str] = []
    for start in range(0, rows.size, 2048):
        batch = dataset.read(rows[start : start + 2048])
        out += decode_tokens(dataset.spec, batch["x"].numpy())
    return out


def report(args, result, floor, history, n_params, n_train, n_test, model, eval_s) -> str:
    spec = model.spec
    rates = ", ".join(f"{h.get('samples_per_s', 0):.0f}" for h in history)
    load = os.getloadavg()
    row = "| {} | {} | {} |"

    def f(key: str, source: dict = result) -> str:
        value = source.get(key)
        return f"{value:.4f}" if isinstance(value, float) else "-"

    lines = [
        f"Data: MOSES (molsets wheel, `datasets/moses_smiles.py --encoding {args.encoding}`): "
        f"a random {n_train} train / {n_test} test molecules (novelty against all 1,584,663), "
        f"vocabulary {len(spec['data']['vocab'])} "
        f"tokens, max length {spec['data']['shape'][0]}.",
        f"Model: the CLI defaults for token data, latent {args.latent_dim}, "
        f"{n_params / 1e6:.2f} M parameters; encoder {json.dumps(spec['encoder']['params'])}, "
        f"decoder {json.dumps(spec['decoder']['params'])}, objective "
        f"{json.dumps(spec['objective'])}; Adam lr {args.lr:g}, batch {args.batch_size}, "
        f"seed {args.seed}, {args.threads} torch thread(s), device `{args.device}`.",
        f"Training: {result['steps']} steps = {result['steps'] * args.batch_size / 1e6:.2f} M "
        f"molecules in {sci.minutes(result['train_seconds'])} "
        f"({'the Trainer' if args.score_only else 'process start to model saved'}); "
        f"scoring {eval_s:.0f} s. Training molecules/s by epoch (the last one cut short): "
        f"{rates}. Machine "
        f"load average at the end {'of scoring ' if args.score_only else ''}(1/5/15 min): "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} cores.",
        "",
        "| metric | this run | published MOSES VAE |",
        "|---|---|---|",
        row.format(f"validity ({result['samples']} prior samples)", f("validity"),
                   PUBLISHED["validity"]),
        row.format("unique@1000", f("unique@1000"), PUBLISHED["unique@1000"]),
        *([row.format(f"unique@{result['samples']}", f(f"unique@{result['samples']}"),
                      f"{PUBLISHED['unique@10000']} (unique@10000)")]
          if result["samples"] != 1000 else []),
        row.format("novelty (vs the whole training set)", f("novelty"), PUBLISHED["novelty"]),
        row.format("internal diversity (IntDiv1, 1000 samples)", f("internal_diversity"),
                   PUBLISHED["internal_diversity"]),
        row.format(f"validation KL (nats per molecule, {args.eval_n} test molecules)",
                   f("val_kl"), "-"),
        row.format("validation reconstruction NLL (nats per molecule)", f("val_reconstruction"),
                   "-"),
        row.format(f"reconstruction accuracy ({args.eval_n} test molecules, greedy from the "
                   "mean)",
                   f("reconstruction_accuracy"), "-"),
    ]  # fmt: skip
    for name, label in (("mw", "molecular weight"), ("logp", "logP"), ("qed", "QED")):
        key = f"wasserstein_{name}"
        lines.append(row.format(
            f"Wasserstein {label} to {args.eval_n} test molecules (as many training molecules: "
            f"{f(key, floor)})", f(key), PUBLISHED_W1[name]))  # fmt: skip
    lines += [
        "",
        "The published figures are MOSES's own VAE (biGRU 256 encoder, 3 x GRU 512 decoder, "
        "latent 128, about 100 GPU epochs), Table 2 of Polykovskiy et al. (2020); its property "
        "distances (Wasserstein-1 to the 176k-molecule test set from 30,000 samples) come from "
        "the property plots of the MOSES repository. With our smaller samples (1000 generated, "
        f"{args.eval_n} test) the distance has a floor set by sampling alone: the training-set "
        "figure in brackets.",
        f"Sample molecules: {', '.join(f'`{s}`' for s in result.get('examples', [])[:5])}.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
