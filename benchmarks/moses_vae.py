"""A GRU VAE on MOSES molecules: validity, uniqueness, novelty and reconstruction (RDKit).

Data: the MOSES benchmark split (1,584,663 train / 176,074 test SMILES) from the ``molsets``
wheel, tokenised by the recipe ``datasets/moses_smiles.py`` into genlatent token files (the
test split uses the training vocabulary). Made on the first run (a few minutes) and reused.

Model (after the MOSES character VAE, smaller so that a CPU budget buys enough steps; the
MOSES one is GRU 256 / 3 x GRU 512 / latent 128, batch 512, about 100 GPU epochs):
bidirectional GRU encoder (hidden 128), GRU decoder conditioned on z at every step (hidden
256), latent 64, normal posterior, standard-normal prior, categorical likelihood; the KL
weight rises linearly from 0 to ``--beta`` (0.05 as in MOSES) over ``--warmup-steps`` (1000).
Adam, gradient-norm clip 100. A plain time-boxed loop over ``model.loss``.
Training streams through the shuffled training set until ``--epochs`` or ``--minutes``.

Scores (RDKit):
- 10,000 SMILES sampled from the prior (decoder sampling at temperature 1);
- validity: RDKit parses a non-empty string; uniqueness: distinct canonical SMILES among the
  valid; novelty: share of those distinct canonical SMILES not in the training set (the MOSES
  training strings are RDKit-canonical already: 1 in 5000 changes under today's RDKit);
- reconstruction: greedy decoding of the posterior mean of ``--recon-n`` test molecules; a hit
  is an exact match of canonical SMILES.

    python benchmarks/moses_vae.py                      # 22 min training + seconds of scoring
    python benchmarks/moses_vae.py --quick              # smoke run on the 2k sample
    python benchmarks/moses_vae.py --minutes 600 --epochs 20 --latent-dim 128 \
        --encoder-hidden 256 --decoder-hidden 512 --decoder-layers 3 --device cuda
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _science as sci  # noqa: E402

import genlatent  # noqa: E402
from genlatent.data import H5Dataset  # noqa: E402
from genlatent.data.tokens import Vocabulary  # noqa: E402

PUBLISHED = {"validity": "0.95-0.98", "unique@10k": "0.998", "novelty": "0.69"}


def prepare(folder: Path, quick: bool) -> tuple[Path, Path]:
    """The train/test token files, made by the data recipe when missing."""
    if quick:  # the 2k sample file of the data recipe, as both train and test
        sample = sci.ROOT / "datasets" / "samples" / "moses_2k.h5"
        return sample, sample
    train, test = folder / "moses_train.h5", folder / "moses_test.h5"
    if not (train.exists() and test.exists()):
        sci.load_recipe("moses_smiles").main(["--out", str(folder)])
    return train, test


def load_tokens(path: Path) -> tuple[torch.Tensor, torch.Tensor, list[str], list[str]]:
    """Ids (N, L) uint8, lengths (N,), vocabulary tokens and raw SMILES strings."""
    ds = H5Dataset(path, check=False)
    with h5py.File(path, "r", locking=False) as f:
        x = torch.from_numpy(f["x"][:].astype(np.int64 if f["x"].dtype != np.uint8 else np.uint8))
        lengths = torch.from_numpy(f["lengths"][:].astype(np.int64))
        smiles = [s.decode() for s in f["smiles"][:]]
    return x, lengths, list(ds.spec.vocab), smiles


def spec(vocab: list[str], max_length: int, args: argparse.Namespace) -> dict:
    return {
        "model": "vae",
        "latent_dim": args.latent_dim,
        "data": {"kind": "tokens", "shape": [max_length], "vocab": vocab},
        "encoder": {
            "name": "gru",
            "params": {
                "hidden_size": args.encoder_hidden,
                "bidirectional": True,
                "embedding_dim": 64,
            },
        },
        "decoder": {
            "name": "gru",
            "params": {
                "hidden_size": args.decoder_hidden,
                "num_layers": args.decoder_layers,
                "embedding_dim": 64,
                "condition": "both",
            },
        },
        "posterior": "normal",
        "prior": "standard_normal",
        "likelihood": "categorical",
        "objective": {"beta": args.beta, "kl_warmup_steps": args.warmup_steps},
    }


def canonical(smiles: str) -> str | None:
    """RDKit canonical SMILES, or None when RDKit cannot parse it (or it is empty)."""
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")  # one line per invalid sample otherwise

    if not smiles:
        return None
    mol = Chem.MolFromSmiles(smiles)
    return Chem.MolToSmiles(mol) if mol is not None else None


def decode_all(vocab: Vocabulary, ids: torch.Tensor) -> list[str]:
    return [vocab.decode(row) for row in ids.tolist()]


@torch.no_grad()
def sample_prior(model, vocab: Vocabulary, n: int, batch: int, device) -> list[str]:
    out: list[str] = []
    for start in range(0, n, batch):
        z = model.prior.sample(min(batch, n - start)).to(device)
        ids, _ = model.generate_from(z, temperature=1.0, mean=False)
        out += decode_all(vocab, ids.cpu())
    return out


def score_samples(samples: list[str], train: set[str]) -> dict[str, float]:
    canon = [canonical(s) for s in samples]
    valid = [c for c in canon if c is not None]
    unique = set(valid)
    novel = [c for c in unique if c not in train]
    return {
        "n": len(samples),
        "validity": len(valid) / len(samples),
        "uniqueness": len(unique) / max(len(valid), 1),
        "novelty": len(novel) / max(len(unique), 1),
        "examples": [c for c in valid[:5]],
    }


@torch.no_grad()
def reconstruction(model, vocab, x, lengths, smiles, n, batch, device) -> float:
    hits = 0
    for start in range(0, n, batch):
        sl = slice(start, min(start + batch, n))
        length = lengths[sl]
        xb = x[sl, : int(length.max())].long().to(device)
        ids, _ = model.reconstruct(xb, length.to(device))
        for decoded, original in zip(decode_all(vocab, ids.cpu()), smiles[sl], strict=True):
            target = canonical(original)
            hits += target is not None and canonical(decoded) == target
    return hits / n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sci.common_flags(parser, epochs=1, minutes=22.0)
    parser.add_argument("--data", default=str(sci.ROOT / "runs" / "science"))
    parser.add_argument("--latent-dim", type=int, default=64)
    parser.add_argument("--encoder-hidden", type=int, default=128)
    parser.add_argument("--decoder-hidden", type=int, default=256)
    parser.add_argument("--decoder-layers", type=int, default=1)
    parser.add_argument("--beta", type=float, default=0.05)
    parser.add_argument("--warmup-steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--samples", type=int, default=10000, help="SMILES drawn from the prior")
    parser.add_argument("--recon-n", type=int, default=2000, help="test molecules reconstructed")
    parser.add_argument(
        "--section", default="moses_vae", help="BENCHMARKS.md section (e.g. for a longer run)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.minutes, args.epochs, args.samples, args.recon_n = 0.5, 1, 200, 100
        args.warmup_steps, args.decoder_hidden, args.latent_dim = 10, 128, 32
    device = sci.setup(args)
    begin = time.perf_counter()
    train_path, test_path = prepare(Path(args.data), args.quick)
    x, lengths, vocab_tokens, train_smiles = load_tokens(train_path)
    xt, lt, _, test_smiles = load_tokens(test_path)
    vocab = Vocabulary(vocab_tokens)
    prep = time.perf_counter() - begin
    print(
        f"data: train {tuple(x.shape)}, test {tuple(xt.shape)}, vocabulary {len(vocab)} "
        f"({prep:.0f} s)",
        flush=True,
    )

    model = genlatent.build(spec(vocab_tokens, x.shape[1], args)).to(device)
    n_params = sum(p.numel() for p in model.parameters())

    def make_batch(index: torch.Tensor) -> dict[str, torch.Tensor]:
        length = lengths[index]
        return {
            "x": x[index, : int(length.max())].long().to(device),
            "lengths": length.to(device),
        }

    info = sci.train(
        model, make_batch, len(x), epochs=args.epochs, minutes=args.minutes,
        batch_size=args.batch_size, lr=args.lr, seed=args.seed, label="moses",
    )  # fmt: skip
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    samples = sample_prior(model, vocab, args.samples, 1000, device)
    scores = score_samples(samples, set(train_smiles))
    recon = reconstruction(
        model, vocab, xt, lt, test_smiles, min(args.recon_n, len(xt)), 500, device
    )
    eval_s = time.perf_counter() - start
    if not args.quick:
        saved = model.save(Path(args.out or sci.ROOT / "runs" / "science") / args.section)
        print(f"model saved to {saved} (genlatent.load)")
    total = time.perf_counter() - begin
    seen = info["steps"] * args.batch_size
    print(
        f"trained {info['epochs']:.3f} epochs ({int(info['steps'])} steps, {seen:.0f} "
        f"molecules) in {sci.minutes(info['seconds'])}; eval {eval_s:.0f} s"
    )
    print(
        f"validity {scores['validity']:.4f}  unique {scores['uniqueness']:.4f}  "
        f"novelty {scores['novelty']:.4f}  reconstruction {recon:.4f}  "
        f"(published VAE: validity {PUBLISHED['validity']}, unique@10k "
        f"{PUBLISHED['unique@10k']}, novelty {PUBLISHED['novelty']})"
    )
    print("examples:", scores["examples"])
    if not args.no_report and not args.quick:
        from _report import write_section

        body = f"""
Data: MOSES (molsets wheel, via `datasets/moses_smiles.py`): {len(x)} train / {len(xt)} test SMILES,
vocabulary {len(vocab)} tokens, max length {x.shape[1]}. Model: VAE, biGRU encoder (hidden
{args.encoder_hidden}), GRU decoder ({args.decoder_layers} x {args.decoder_hidden}, z at every
step), latent {args.latent_dim}, {n_params / 1e6:.2f} M parameters; KL weight 0 -> {args.beta}
over {args.warmup_steps} steps; Adam lr {args.lr}, batch {args.batch_size}, seed {args.seed}.
Training budget {args.minutes:g} min: {info["epochs"]:.3f} epochs = {int(info["steps"])} steps
= {seen / 1e6:.2f} M molecules seen, in {sci.minutes(info["seconds"])}; final train
reconstruction {info.get("train_reconstruction", float("nan")):.2f} nats, KL
{info.get("train_kl", float("nan")):.2f} nats. Evaluation {eval_s:.0f} s; total run
{sci.minutes(total)}.

| metric | this run | published MOSES VAE |
|---|---|---|
| validity (of {scores["n"]} prior samples) | {scores["validity"]:.4f} | {PUBLISHED["validity"]} |
| uniqueness among valid (unique@{scores["n"]}) | {scores["uniqueness"]:.4f} | \
{PUBLISHED["unique@10k"]} |
| novelty (unique valid not in train) | {scores["novelty"]:.4f} | {PUBLISHED["novelty"]} |
| reconstruction, greedy, posterior mean ({args.recon_n} test molecules) | {recon:.4f} | - |

The published model (GRU 256 encoder, 3 x GRU 512 decoder, latent 128) trains for about 100
epochs on a GPU; this run is what the CPU budget above reaches.
Sample molecules: {", ".join(f"`{s}`" for s in scores["examples"])}.
"""
        title = "MOSES: GRU VAE molecules scored by RDKit"
        if args.section != "moses_vae":
            title += f" ({args.minutes:g}-minute training budget)"
        write_section(args.section, title, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
