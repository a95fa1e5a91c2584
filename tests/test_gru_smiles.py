"""A GRU VAE trained briefly on 2000 real MOSES SMILES reconstructs held-out molecules better
than chance, and better than baselines that ignore the molecule's code.

The sample files in ``datasets/samples/`` are random draws from the MOSES train and test
splits (MIT licence; see docs/networks.md). Training takes a few hundred optimiser steps of a
small model: well short of a useful molecule VAE, long enough to show that the encoder's code
carries the molecule to the decoder.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

import genlatent
from genlatent.data import EOS_ID, PAD_ID
from genlatent.data.tokens import Vocabulary, tokenize_smiles

SAMPLES = Path(__file__).resolve().parents[1] / "datasets" / "samples"
TRAIN_FILE, TEST_FILE = SAMPLES / "moses_train_2k.csv", SAMPLES / "moses_test_200.csv"
STEPS, BATCH = 400, 32


def read_smiles(path: Path) -> list[str]:
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["SMILES"], f"{path} must start with the header SMILES"
    return [row[0] for row in rows[1:]]


def token_accuracy(predicted: torch.Tensor, x: torch.Tensor, lengths: torch.Tensor) -> float:
    """Fraction of the target's positions (``<eos>`` included) where the prediction agrees."""
    counted = torch.arange(x.shape[1])[None, :] < lengths[:, None]
    return ((predicted[:, : x.shape[1]] == x) & counted).sum().item() / counted.sum().item()


def edit_similarity(a: list[int], b: list[int]) -> float:
    """1 - Levenshtein distance / longer length."""
    previous = list(range(len(b) + 1))
    for i, ta in enumerate(a, 1):
        current = [i]
        for j, tb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ta != tb)))
        previous = current
    return 1 - previous[-1] / max(len(a), len(b), 1)


def mean_edit_similarity(tokens, lengths, x, x_lengths) -> float:
    pairs = zip(tokens.tolist(), lengths.tolist(), x.tolist(), x_lengths.tolist(), strict=True)
    values = [edit_similarity(t[:n], r[:m]) for t, n, r, m in pairs]
    return sum(values) / len(values)


@pytest.fixture(scope="module")
def smiles_data():
    train = [tokenize_smiles(s) for s in read_smiles(TRAIN_FILE)]
    test = [tokenize_smiles(s) for s in read_smiles(TEST_FILE)]
    vocab = Vocabulary.build(train)
    max_length = max(len(t) for t in train + test) + 1  # + <eos>
    arrays = [
        *vocab.encode_batch(train, max_length),
        *vocab.encode_batch(test, max_length, allow_unknown=True),
    ]
    x_train, len_train, x_test, len_test = (torch.from_numpy(a).long() for a in arrays)
    return vocab, x_train, len_train, x_test, len_test


def train_steps(model, x_train, len_train):
    """``STEPS`` Adam steps of ``BATCH`` random training molecules (seeded)."""
    optimiser = torch.optim.Adam(model.parameters(), lr=5e-3)
    order = torch.Generator().manual_seed(0)
    model.train()
    for step in range(STEPS):
        rows = torch.randint(0, len(x_train), (BATCH,), generator=order)
        lengths = len_train[rows]
        batch = {"x": x_train[rows, : int(lengths.max())], "lengths": lengths}
        loss, _ = model.loss(batch, step)
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimiser.step()
    return model.eval()


SMALL = {"embedding_dim": 32, "hidden_size": 96}


@pytest.fixture(scope="module")
def trained(smiles_data):
    """A small GRU VAE with a small KL weight (the code must carry the molecule) after
    ``STEPS`` Adam steps (seeded here: module fixtures run before the per-test seeding)."""
    vocab, x_train, len_train, _, _ = smiles_data
    torch.manual_seed(0)
    spec = {
        "model": "vae",
        "latent_dim": 32,
        "data": {"kind": "tokens", "shape": [x_train.shape[1]], "vocab": vocab.tokens},
        "encoder": {"name": "gru", "params": dict(SMALL)},
        "decoder": {"name": "gru", "params": {**SMALL, "word_dropout": 0.0}},
        "objective": {"beta": 0.01},
    }
    return train_steps(genlatent.build(spec), x_train, len_train)


@pytest.fixture(scope="module")
def trained_defaults(smiles_data):
    """The same small GRU VAE with the objective and decoder options ``genlatent train`` uses
    for token data (free bits, cyclical KL weight at beta 1, word dropout), as in the README
    molecule example."""
    from genlatent.cli import config as cfg

    vocab, x_train, len_train, _, _ = smiles_data
    torch.manual_seed(0)
    config = cfg.default_config()
    config["latent_dim"] = 32
    config["encoder"] = {"name": None, "params": dict(SMALL)}
    config["decoder"] = {"name": None, "params": dict(SMALL)}
    data = {"kind": "tokens", "shape": [x_train.shape[1]], "vocab": vocab.tokens}
    model = genlatent.build(cfg.model_spec(config, data))
    assert model.free_bits > 0 and model.decoder.word_dropout > 0 and model.beta == 1
    return train_steps(model, x_train, len_train)


def test_sample_files_are_real_disjoint_smiles(smiles_data):
    train, test = read_smiles(TRAIN_FILE), read_smiles(TEST_FILE)
    assert len(train) == 2000 and len(test) == 200
    assert not set(train) & set(test)
    vocab, x_train, len_train, x_test, len_test = smiles_data
    assert len(vocab) > 20 and "c" in vocab.index and "Cl" in vocab.index
    for ids, length, smiles in zip(x_test[:20], len_test[:20], test[:20], strict=True):
        assert ids[length - 1] == EOS_ID and (ids[length:] == PAD_ID).all()
        assert vocab.decode(ids.tolist()) == smiles  # encode/decode round trip


def test_gru_vae_reconstructs_held_out_molecules(smiles_data, trained):
    """Per-token accuracy on held-out molecules, decoding each from its own code, against
    chance (1/V), the most frequent token, and decoding from another molecule's code."""
    vocab, x_train, len_train, x_test, len_test = smiles_data
    other = torch.roll(torch.arange(len(x_test)), 1)  # each molecule gets another one's code
    with torch.no_grad():
        z = trained.encode_mean(x_test, len_test)
        forced = trained.decode(z, x_test, len_test).argmax(1)  # next token given true prefix
        forced_other = trained.decode(z[other], x_test, len_test).argmax(1)
        tokens, lengths = trained.decoder.generate(z, greedy=True)  # free-running
        tokens_other, _ = trained.decoder.generate(z[other], greedy=True)
    counted = torch.arange(x_train.shape[1])[None, :] < len_train[:, None]
    most_frequent = torch.bincount(x_train[counted], minlength=len(vocab)).argmax()
    unigram = token_accuracy(torch.full_like(x_test, int(most_frequent)), x_test, len_test)
    acc = {
        "teacher-forced": token_accuracy(forced, x_test, len_test),
        "teacher-forced, other code": token_accuracy(forced_other, x_test, len_test),
        "greedy": token_accuracy(tokens, x_test, len_test),
        "greedy, other code": token_accuracy(tokens_other, x_test, len_test),
        "unigram": unigram,
        "chance": 1 / len(vocab),
        "edit similarity": mean_edit_similarity(tokens, lengths, x_test, len_test),
        "edit similarity to another molecule": mean_edit_similarity(
            tokens, lengths, x_test[other], len_test[other]
        ),
    }
    report = ", ".join(f"{k} {v:.3f}" for k, v in acc.items())
    print(report)
    assert acc["teacher-forced"] > acc["unigram"] + 0.3, report
    assert acc["teacher-forced"] > acc["teacher-forced, other code"] + 0.1, report
    assert acc["greedy"] > 4 * acc["chance"], report
    assert acc["greedy"] > acc["unigram"], report
    assert acc["greedy"] > 1.5 * acc["greedy, other code"], report
    assert acc["edit similarity"] > acc["edit similarity to another molecule"] + 0.1, report


def test_held_out_molecules_use_the_latent_code(smiles_data, trained_defaults):
    """The README's promise on the shipped data: the KL of held-out molecules is well above
    zero (no posterior collapse) and greedy decoding from a molecule's own posterior mean
    gives back that molecule more often, and closer, than decoding from another's."""
    vocab, _, _, x_test, len_test = smiles_data
    other = torch.roll(torch.arange(len(x_test)), 1)
    with torch.no_grad():
        kl = trained_defaults.elbo(x_test, len_test)["kl"].mean().item()
        z = trained_defaults.encode_mean(x_test, len_test)
        own, own_len = trained_defaults.decoder.generate(z, greedy=True)
        theirs, theirs_len = trained_defaults.decoder.generate(z[other], greedy=True)
    assert kl >= 5.0, f"held-out KL {kl:.2f} nats: the decoder ignores z"
    targets = [vocab.decode(row) for row in x_test.tolist()]
    exact_own = sum(vocab.decode(a) == b for a, b in zip(own.tolist(), targets, strict=True))
    exact_other = sum(vocab.decode(a) == b for a, b in zip(theirs.tolist(), targets, strict=True))
    similarity_own = mean_edit_similarity(own, own_len, x_test, len_test)
    similarity_other = mean_edit_similarity(theirs, theirs_len, x_test, len_test)
    report = (
        f"KL {kl:.2f}, exact own {exact_own}, other {exact_other}, edit similarity own "
        f"{similarity_own:.3f}, other {similarity_other:.3f}"
    )
    print(report)
    assert exact_own >= exact_other, report
    assert similarity_own > similarity_other + 0.1, report


def test_generated_molecules_are_valid_token_sequences(smiles_data, trained):
    vocab = smiles_data[0]
    z = torch.randn(50, trained.latent_dim)
    tokens, lengths = trained.decoder.generate(z, temperature=0.8)
    max_length = trained.data.max_length
    assert tokens.shape == (50, max_length) and (lengths <= max_length).all()
    for row, length in zip(tokens.tolist(), lengths.tolist(), strict=True):
        assert row[length - 1] == EOS_ID and all(t == PAD_ID for t in row[length:])
        text = vocab.decode(row)
        assert tokenize_smiles(text) == [vocab.tokens[t] for t in row[: length - 1]]
