"""GRU encoder and autoregressive GRU decoder for token sequences (SMILES, text).

Token ids follow :mod:`genlatent.data.tokens`: ``<pad>=0 <bos>=1 <eos>=2 <unk>=3``; a stored
sequence ends with ``<eos>`` and its length counts it; ``<bos>`` is never stored, the decoder
prepends it. The decoder is conditioned on z twice (as in the MOSES character VAE): z sets the
initial hidden state and is concatenated to every input embedding (``condition`` picks one or
both).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from .. import registry
from ..dataspec import BOS_ID, EOS_ID, PAD_ID, UNK_ID, DataSpec
from ..errors import SpecError
from ..parts import Decoder, Encoder
from . import _common as c

CONDITIONS = ("both", "init", "input")


def sequence_lengths(x: Tensor) -> Tensor:
    """Lengths of padded id sequences ``(B, L)``: up to and including the first ``<eos>``, else
    the number of non-pad ids; at least 1."""
    is_eos = x == EOS_ID
    first_eos = is_eos.int().argmax(dim=1) + 1
    non_pad = (x != PAD_ID).sum(dim=1)
    return torch.where(is_eos.any(dim=1), first_eos, non_pad).clamp(min=1)


def _gru(
    input_size: int, hidden_size: int, num_layers: int, dropout: float, bidirectional: bool = False
) -> nn.GRU:
    return nn.GRU(
        input_size,
        hidden_size,
        num_layers,
        batch_first=True,
        dropout=dropout if num_layers > 1 else 0.0,
        bidirectional=bidirectional,
    )


@registry.encoders.register("gru")
class GRUEncoder(Encoder):
    """Embeds tokens, runs a (bi)GRU over each sequence's real tokens (lengths from the batch, or
    from the first ``<eos>``), maps the final hidden state(s) to the posterior's parameters.
    Padding never influences the result: a unidirectional GRU reads its output at the last real
    token, a bidirectional one runs on packed sequences.

    Params: ``embedding_dim`` (64), ``hidden_size`` (256), ``num_layers`` (1),
    ``bidirectional`` (False), ``dropout`` (between GRU layers and before the output layer).
    A condition vector (``condition_dim`` > 0) is concatenated to the final state.
    """

    kinds: ClassVar[frozenset[str]] = frozenset({"tokens"})

    def __init__(
        self,
        data: DataSpec,
        out_features: int,
        *,
        embedding_dim: int = 64,
        hidden_size: int = 256,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        condition_dim: int = 0,
    ) -> None:
        super().__init__(data, out_features)
        part = c.where("encoder", "gru")
        self.condition_dim = c.condition_dim(condition_dim, part)
        embedding_dim = c.positive_int(embedding_dim, "embedding_dim", part)
        hidden_size = c.positive_int(hidden_size, "hidden_size", part)
        self.num_layers = c.positive_int(num_layers, "num_layers", part)
        c.choice(bidirectional, (True, False), "bidirectional", part)
        dropout = c.probability(dropout, "dropout", part)
        self.directions = 2 if bidirectional else 1
        self.hidden_size = hidden_size
        self.embed = nn.Embedding(data.vocab_size, embedding_dim, padding_idx=PAD_ID)
        self.rnn = _gru(embedding_dim, hidden_size, self.num_layers, dropout, bidirectional)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()  # no mask at 0
        self.head = nn.Linear(self.directions * hidden_size + self.condition_dim, out_features)

    def forward(
        self, x: Tensor, lengths: Tensor | None = None, condition: Tensor | None = None
    ) -> Tensor:
        x = x.long()
        lengths = sequence_lengths(x) if lengths is None else lengths.long()
        lengths = lengths.clamp(1, x.shape[1])
        x = x[:, : int(lengths.max())]
        if self.directions == 1:
            # Causal, so the output at the last real token never saw the padding; on CPU this
            # is 1.6-1.9x faster than packing (benchmarks/bench_networks.py).
            out, _ = self.rnn(self.embed(x))
            index = (lengths - 1).to(out.device).view(-1, 1, 1).expand(-1, 1, out.shape[2])
            last = out.gather(1, index)[:, 0]
        else:  # the backward direction must start at each sequence's own end: pack
            packed = pack_padded_sequence(
                self.embed(x), lengths.cpu(), batch_first=True, enforce_sorted=False
            )
            _, h = self.rnn(packed)  # (layers * directions, B, H), in the batch's own order
            h = h.view(self.num_layers, self.directions, x.shape[0], self.hidden_size)[-1]
            last = h.transpose(0, 1).reshape(x.shape[0], -1)
        return self.head(c.with_condition(self.drop(last), condition, self.condition_dim))


@registry.decoders.register("gru")
class GRUDecoder(Decoder):
    """Autoregressive GRU over tokens, conditioned on z.

    ``forward(z, x, lengths)`` teacher-forces (inputs ``<bos>, x[:, :-1]``) and returns logits
    ``(B, vocab_size, L)`` with ``L = x.shape[1]``; without ``x`` it decodes greedily for
    ``max_length`` steps and returns those steps' logits. :meth:`generate` samples sequences.

    Params: ``embedding_dim`` (64), ``hidden_size`` (256), ``num_layers`` (1), ``dropout``,
    ``condition`` ("both", "init": z -> initial hidden state only, "input": z concatenated to
    every input only), ``word_dropout`` (0.25; training only: replace that fraction of the
    teacher-forced input tokens by ``<unk>``, Bowman et al. 2016, so that the decoder cannot
    predict the next token from the previous ones alone and has to read z; drawn in the same
    single pass, no second forward; 0 turns it off).

    A condition vector (``condition_dim`` > 0) joins z in the context the decoder reads: the
    context ``[z, condition]`` sets the initial state and/or feeds every input, as z alone
    does without conditions.
    """

    kinds: ClassVar[frozenset[str]] = frozenset({"tokens"})
    autoregressive: ClassVar[bool] = True
    # models saved before word dropout became a token default were trained without it
    legacy_defaults: ClassVar[dict[str, Any]] = {"word_dropout": 0.0}

    def __init__(
        self,
        data: DataSpec,
        latent_dim: int,
        num_params: int,
        *,
        embedding_dim: int = 64,
        hidden_size: int = 256,
        num_layers: int = 1,
        dropout: float = 0.0,
        condition: str = "both",
        word_dropout: float = 0.25,
        condition_dim: int = 0,
    ) -> None:
        super().__init__(data, latent_dim, num_params)
        part = c.where("decoder", "gru")
        self.condition_dim = c.condition_dim(condition_dim, part)
        context = latent_dim + self.condition_dim
        vocab = data.vocab_size
        if num_params != vocab:  # the next-token logits are the likelihood's parameters
            raise SpecError(
                f"{part}: emits {vocab} logits per token (one categorical over the vocabulary) "
                f"but the likelihood needs {num_params} parameters per token; use 'categorical'"
            )
        embedding_dim = c.positive_int(embedding_dim, "embedding_dim", part)
        self.hidden_size = c.positive_int(hidden_size, "hidden_size", part)
        self.num_layers = c.positive_int(num_layers, "num_layers", part)
        dropout = c.probability(dropout, "dropout", part)
        self.condition = c.choice(condition, CONDITIONS, "condition", part)
        self.word_dropout = c.probability(word_dropout, "word_dropout", part)
        self.embed = nn.Embedding(vocab, embedding_dim, padding_idx=PAD_ID)
        z_input = context if self.condition in ("both", "input") else 0
        self.rnn = _gru(embedding_dim + z_input, self.hidden_size, self.num_layers, dropout)
        self.init = (
            nn.Linear(context, self.num_layers * self.hidden_size)
            if self.condition in ("both", "init")
            else None
        )
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()  # no mask at 0
        self.out = nn.Linear(self.hidden_size, vocab)

    def initial_state(self, z: Tensor) -> Tensor:
        """The GRU's initial hidden state ``(layers, B, H)`` from the context ``z`` (z, or
        ``[z, condition]`` for a conditioned decoder; zeros when ``condition="input"``)."""
        if self.init is None:
            return z.new_zeros(self.num_layers, z.shape[0], self.hidden_size)
        h = torch.tanh(self.init(z)).view(z.shape[0], self.num_layers, self.hidden_size)
        return h.transpose(0, 1).contiguous()

    def _inputs(self, tokens: Tensor, z: Tensor) -> Tensor:
        emb = self.embed(tokens)
        if self.condition == "init":
            return emb
        return torch.cat([emb, z[:, None, :].expand(-1, tokens.shape[1], -1)], dim=-1)

    def step(self, tokens: Tensor, z: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """One decoding step: previous tokens ``(B,)`` -> logits ``(B, V)`` and the new state."""
        out, h = self.rnn(self._inputs(tokens[:, None], z), h)
        return self.out(self.drop(out[:, 0])), h

    def forward(
        self,
        z: Tensor,
        x: Tensor | None = None,
        lengths: Tensor | None = None,
        condition: Tensor | None = None,
    ) -> Tensor:
        z = c.with_condition(z, condition, self.condition_dim)  # the context from here on
        if x is None:
            return self._greedy_logits(z)
        x = x.long()
        bos = x.new_full((x.shape[0], 1), BOS_ID)
        inputs = torch.cat([bos, x[:, :-1]], dim=1)
        if self.training and self.word_dropout > 0:
            drop = torch.rand(inputs.shape, device=x.device) < self.word_dropout
            drop &= inputs > UNK_ID  # keep <bos>, <eos> and padding
            inputs = inputs.masked_fill(drop, UNK_ID)
        out, _ = self.rnn(self._inputs(inputs, z), self.initial_state(z))
        return self.out(self.drop(out)).transpose(1, 2)

    def _greedy_logits(self, z: Tensor) -> Tensor:
        h = self.initial_state(z)
        tokens = torch.full((z.shape[0],), BOS_ID, dtype=torch.long, device=z.device)
        steps = []
        for _ in range(self.data.max_length):
            logits, h = self.step(tokens, z, h)
            steps.append(logits)
            tokens = _never_special(logits).argmax(dim=-1)
        return torch.stack(steps, dim=2)

    @torch.no_grad()
    def generate(
        self,
        z: Tensor,
        *,
        max_length: int | None = None,
        temperature: float = 1.0,
        greedy: bool = False,
        condition: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Token ids ``(B, max_length)`` and lengths ``(B,)``, in the stored-data convention.

        Each sequence stops at its first ``<eos>`` (counted in its length) and is padded after
        it; ``<pad>``, ``<bos>`` and ``<unk>`` are never drawn. A sequence still open at
        ``max_length`` (default: the data's) gets ``<eos>`` as its last token, so every
        sequence ends.
        ``greedy`` takes the most likely token; otherwise tokens are sampled from
        ``softmax(logits / temperature)``.
        """
        z = c.with_condition(z, condition, self.condition_dim)
        max_length = self.data.max_length if max_length is None else max_length
        c.positive_int(max_length, "max_length", "generate")
        if not greedy and not (isinstance(temperature, (int, float)) and temperature > 0):
            raise SpecError(f"generate: temperature must be a number > 0, got {temperature!r}")
        batch = z.shape[0]
        tokens = torch.full((batch, max_length), PAD_ID, dtype=torch.long, device=z.device)
        lengths = torch.full((batch,), max_length, dtype=torch.long, device=z.device)
        done = torch.zeros(batch, dtype=torch.bool, device=z.device)
        previous = torch.full((batch,), BOS_ID, dtype=torch.long, device=z.device)
        h = self.initial_state(z)
        for t in range(max_length):
            logits, h = self.step(previous, z, h)
            logits = _never_special(logits)
            if t == max_length - 1:
                logits = torch.full_like(logits, -torch.inf)
                logits[:, EOS_ID] = 0.0
            if greedy:
                nxt = logits.argmax(dim=-1)
            else:
                probs = torch.softmax(logits.float() / temperature, dim=-1)
                nxt = torch.multinomial(probs, 1)[:, 0]
            nxt = nxt.masked_fill(done, PAD_ID)
            tokens[:, t] = nxt
            ended = (nxt == EOS_ID) & ~done
            lengths = torch.where(ended, torch.full_like(lengths, t + 1), lengths)
            done |= ended
            if bool(done.all()):
                break
            previous = nxt
        return tokens, lengths


def _never_special(logits: Tensor) -> Tensor:
    """Logits with ``<pad>``, ``<bos>`` and ``<unk>`` made impossible: none is a real token."""
    logits = logits.clone()
    logits[:, [PAD_ID, BOS_ID, UNK_ID]] = -torch.inf
    return logits
