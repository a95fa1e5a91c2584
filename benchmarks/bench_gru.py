"""GRU VAE speed: genlatent's default molecule VAE against a hand-written PyTorch GRU VAE.

Both are the same network (embedding, GRU encoder over the real tokens, linear head to the
posterior's mean and log-variance; GRU decoder whose initial state is ``tanh(W z)`` and whose
every input is the token embedding concatenated with z; a linear layer to the vocabulary's
logits) and the same objective, with the options the CLI turns on for token data: word
dropout on the decoder's teacher-forced inputs (``<unk>`` in place of a fraction of the
tokens, drawn in the same single pass), the free-bits KL floor per latent dimension and the
cyclical KL weight. Sizes, rates and weights of the objective are read from the spec the
CLI resolves for the data (``genlatent train DATA`` with ``--latent-dim``), so the hand model
is always the same size as genlatent's default.

- **genlatent**: ``genlatent.build(spec)``'s model, one step = ``model.loss(batch, step)``,
  backward, fused Adam (as ``Trainer.fit`` steps it; the Trainer's own overhead against a
  hand loop is measured by ``bench_trainer.py``);
- **hand**: the textbook module and loop, fused Adam too.

One process, the same batches (shuffled rows, each batch trimmed to its longest molecule,
as genlatent's loader does) for both. After a warm-up, the two alternate in blocks of
``--block`` steps (the order flips every round) and each block is timed; the ratio of
molecules per second is taken per round (a pair of neighbouring blocks) and its median is
reported, with the same for CPU time (less disturbed by other processes on a shared machine).

    python benchmarks/bench_gru.py                          # the 2k MOSES sample, 12 rounds
    python benchmarks/bench_gru.py --data runs/science/moses_train.h5 --rounds 20
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import write_section  # noqa: E402

import genlatent  # noqa: E402
from genlatent.cli import config as cfg  # noqa: E402
from genlatent.data import open_dataset  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PAD, BOS, UNK = 0, 1, 3


class HandGRUVAE(nn.Module):
    """The GRU VAE written out; sizes and objective weights are read off genlatent's model."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        vocab, latent = model.data.vocab_size, model.latent_dim
        enc_emb, enc_hidden = model.encoder.embed.embedding_dim, model.encoder.hidden_size
        dec_emb, dec_hidden = model.decoder.embed.embedding_dim, model.decoder.hidden_size
        self.enc_embed = nn.Embedding(vocab, enc_emb, padding_idx=PAD)
        self.enc_rnn = nn.GRU(enc_emb, enc_hidden, batch_first=True)
        self.enc_head = nn.Linear(enc_hidden, 2 * latent)
        self.dec_embed = nn.Embedding(vocab, dec_emb, padding_idx=PAD)
        self.dec_init = nn.Linear(latent, dec_hidden)
        self.dec_rnn = nn.GRU(dec_emb + latent, dec_hidden, batch_first=True)
        self.dec_out = nn.Linear(dec_hidden, vocab)
        self.word_dropout = model.decoder.word_dropout
        self.beta, self.free_bits = model.beta, model.free_bits
        self.schedule = model.kl_schedule
        self.cycle, self.ratio = model.kl_cycle_steps, model.kl_cycle_ratio
        self.cycles, self.warmup = model.kl_cycles, model.kl_warmup_steps

    def kl_weight(self, step: int) -> float:
        if self.schedule == "cyclical":
            cycle, position = divmod(step, self.cycle)
            rise = self.ratio * self.cycle
            if (self.cycles and cycle >= self.cycles) or position >= rise:
                return self.beta
            return self.beta * position / rise
        return self.beta * min(1.0, step / self.warmup) if self.warmup else self.beta

    def loss(self, x: torch.Tensor, lengths: torch.Tensor, step: int) -> torch.Tensor:
        out, _ = self.enc_rnn(self.enc_embed(x))
        last = out[torch.arange(x.shape[0]), lengths - 1]
        mu, logvar = self.enc_head(last).chunk(2, dim=1)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        inputs = torch.cat([torch.full_like(x[:, :1], BOS), x[:, :-1]], dim=1)
        if self.word_dropout > 0:
            drop = (torch.rand(inputs.shape) < self.word_dropout) & (inputs > UNK)
            inputs = inputs.masked_fill(drop, UNK)
        emb = torch.cat([self.dec_embed(inputs), z[:, None].expand(-1, x.shape[1], -1)], dim=2)
        h0 = torch.tanh(self.dec_init(z))[None]
        out, _ = self.dec_rnn(emb, h0)
        logits = self.dec_out(out).transpose(1, 2)
        mask = torch.arange(x.shape[1])[None] < lengths[:, None]
        rec = (F.cross_entropy(logits, x, reduction="none") * mask).sum(1)
        kl_dim = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)  # (B, D)
        if self.free_bits > 0:
            above = kl_dim.detach().mean(0) >= self.free_bits
            kl = torch.where(above, kl_dim, torch.full_like(kl_dim, self.free_bits)).sum(1)
        else:
            kl = kl_dim.sum(1)
        return (rec + self.kl_weight(step) * kl).mean()


def batches(x: torch.Tensor, lengths: torch.Tensor, size: int, count: int, seed: int) -> list:
    """``count`` batches of shuffled rows, each trimmed to its longest sequence."""
    g = torch.Generator().manual_seed(seed)
    out = []
    while len(out) < count:
        order = torch.randperm(x.shape[0], generator=g)
        for i in range(0, x.shape[0] - size + 1, size):
            rows = order[i : i + size]
            length = lengths[rows]
            out.append((x[rows, : int(length.max())].contiguous(), length))
            if len(out) == count:
                break
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "datasets/samples/moses_2k.h5")
    parser.add_argument("--latent-dim", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--block", type=int, default=10, help="steps per timed block")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--no-report", action="store_true", help="do not write BENCHMARKS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.distributions.Distribution.set_default_validate_args(False)  # as Trainer.fit does

    data = open_dataset(str(args.data), None)
    full = data.read(torch.arange(len(data)).numpy())
    x, lengths = full["x"].long(), full["lengths"].long()
    config = cfg.default_config()
    config["latent_dim"] = args.latent_dim
    spec = cfg.model_spec(config, data.spec.to_dict())  # the CLI's defaults for this data
    torch.manual_seed(0)
    model = genlatent.build(spec).train()
    hand = HandGRUVAE(model).train()
    sizes = {
        "genlatent": sum(p.numel() for p in model.parameters()),
        "hand": sum(p.numel() for p in hand.parameters()),
    }
    print(f"data {args.data.name}: {tuple(x.shape)}; parameters {sizes}")
    optims = {
        "genlatent": torch.optim.Adam(model.parameters(), lr=1e-3, fused=True),
        "hand": torch.optim.Adam(hand.parameters(), lr=1e-3, fused=True),
    }
    steps = {"genlatent": 0, "hand": 0}

    def step(name: str, xb: torch.Tensor, lb: torch.Tensor) -> None:
        if name == "genlatent":
            loss, _ = model.loss({"x": xb, "lengths": lb}, steps[name])
        else:
            loss = hand.loss(xb, lb, steps[name])
        optims[name].zero_grad(set_to_none=True)
        loss.backward()
        optims[name].step()
        steps[name] += 1

    work = batches(x, lengths, args.batch_size, args.block * (args.rounds + 2), seed=0)
    rates: dict[str, list[float]] = {"genlatent": [], "hand": []}
    cpu_rates: dict[str, list[float]] = {"genlatent": [], "hand": []}
    for r in range(args.rounds + 2):  # the first two rounds warm up (allocator, caches)
        block = work[r * args.block : (r + 1) * args.block]
        molecules = sum(b[0].shape[0] for b in block)
        for name in ("genlatent", "hand") if r % 2 == 0 else ("hand", "genlatent"):
            torch.manual_seed(r)
            start, cpu = time.perf_counter(), time.process_time()
            for xb, lb in block:
                step(name, xb, lb)
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
            if r >= 2:
                rates[name].append(molecules / wall)
                cpu_rates[name].append(molecules / cpu)
        if r >= 2:
            print(f"round {r - 1}: genlatent {rates['genlatent'][-1]:.0f}, hand "
                  f"{rates['hand'][-1]:.0f} molecules/s", flush=True)  # fmt: skip
    ratio = [g / h for g, h in zip(rates["genlatent"], rates["hand"], strict=True)]
    cpu_ratio = [g / h for g, h in zip(cpu_rates["genlatent"], cpu_rates["hand"], strict=True)]
    body = f"""
Data `{args.data.name}` ({x.shape[0]} molecules, vocabulary {model.data.vocab_size},
max length {x.shape[1]}); batch {args.batch_size}; latent {args.latent_dim}; GRU encoder
{model.encoder.hidden_size}, GRU decoder {model.decoder.hidden_size}, embeddings
{model.decoder.embed.embedding_dim}; {sizes["genlatent"]} parameters (hand-written:
{sizes["hand"]}). Decoder and objective options on, as the CLI sets them for token data: word
dropout {model.decoder.word_dropout}, free bits {model.free_bits} nats per dimension, KL
schedule {model.kl_schedule}. Fused Adam for both; {args.threads} torch
thread(s); {args.rounds} interleaved rounds of {args.block} steps after 2 warm-up rounds.

| | molecules/s (median) | molecules per CPU second (median) |
|---|---|---|
| genlatent model (`genlatent.build`, `model.loss`) | {statistics.median(rates["genlatent"]):.0f} \
| {statistics.median(cpu_rates["genlatent"]):.0f} |
| hand-written PyTorch GRU VAE | {statistics.median(rates["hand"]):.0f} \
| {statistics.median(cpu_rates["hand"]):.0f} |

**genlatent / hand-written: {statistics.median(ratio):.3f}x** (median of per-round ratios
{", ".join(f"{q:.2f}" for q in ratio)}; goal >= 0.95x); per CPU second
{statistics.median(cpu_ratio):.3f}x.
"""
    print(body)
    if not args.no_report:
        write_section("gru", "GRU VAE speed against a hand-written PyTorch GRU VAE (CPU)", body)


if __name__ == "__main__":
    main()
