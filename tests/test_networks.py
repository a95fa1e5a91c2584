"""MLP, CNN and GRU networks: shapes from the data spec, training, circular padding, GRU
generation, build-time errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from genlatent import registry
from genlatent.dataspec import BOS_ID, EOS_ID, PAD_ID, UNK_ID, DataSpec
from genlatent.errors import SpecError
from genlatent.networks import (
    CNNDecoder,
    CNNEncoder,
    GRUDecoder,
    GRUEncoder,
    MLPDecoder,
    MLPEncoder,
    sequence_lengths,
)
from genlatent.networks.cnn import wrap_fold

VOCAB = ("<pad>", "<bos>", "<eos>", "<unk>", "C", "c", "O", "N", "(", ")", "=", "1")
DATA = {
    "vectors784": DataSpec("vectors", (784,)),
    "image28": DataSpec("grids", (1, 28, 28)),
    "lattice32": DataSpec("grids", (1, 32, 32)),
    "spectra500": DataSpec("grids", (1, 500)),
    "odd27x33": DataSpec("grids", (1, 27, 33)),
    "counts50": DataSpec("counts", (50,)),
    "tokens24": DataSpec("tokens", (24,), vocab=VOCAB),
}
SMALL = {  # small widths keep the tests fast; shapes are still inferred from the data
    "mlp": {"hidden": [64]},
    "cnn": {"channels": [8, 16]},
    "gru": {"embedding_dim": 16, "hidden_size": 32},
}
PAIRINGS = [
    ("vectors784", "mlp", "mlp"),
    ("counts50", "mlp", "mlp"),
    ("image28", "cnn", "cnn"),
    ("image28", "mlp", "mlp"),
    ("image28", "cnn", "mlp"),
    ("image28", "mlp", "cnn"),
    ("lattice32", "cnn", "cnn"),
    ("lattice32", "mlp", "cnn"),
    ("lattice32", "cnn", "mlp"),
    ("spectra500", "cnn", "cnn"),
    ("spectra500", "mlp", "cnn"),
    ("spectra500", "cnn", "mlp"),
    ("spectra500", "mlp", "mlp"),
    ("odd27x33", "cnn", "cnn"),
    ("tokens24", "gru", "gru"),
]
LATENT = 4


def params_for(data_key: str, name: str) -> dict:
    params = dict(SMALL[name])
    if data_key == "lattice32" and name == "cnn":
        params["padding_mode"] = "circular"
    return params


def make_batch(data: DataSpec, n: int = 8) -> dict[str, torch.Tensor]:
    """A small batch of data of each kind, with structure a network can learn."""
    if data.kind == "tokens":  # cycles through the real tokens from a random start
        lengths = torch.randint(3, data.max_length + 1, (n,))
        start = torch.randint(0, data.vocab_size - 4, (n, 1))
        x = 4 + (start + torch.arange(data.max_length)) % (data.vocab_size - 4)
        for i, length in enumerate(lengths):
            x[i, length - 1] = EOS_ID
            x[i, length:] = PAD_ID
        return {"x": x, "lengths": lengths}
    gen = torch.Generator().manual_seed(1)
    rate = torch.rand(*data.shape, generator=gen)
    if data.kind == "grids":  # a smooth field, like images and spectra
        coarse = torch.rand(1, data.shape[0], *[4] * (len(data.shape) - 1), generator=gen)
        mode = "linear" if len(data.shape) == 2 else "bilinear"
        rate = F.interpolate(coarse, size=data.shape[1:], mode=mode, align_corners=True)[0]
    if data.kind == "counts":
        return {"x": torch.poisson((rate * 20).expand(n, *data.shape))}
    probs = torch.where(rate > 0.5, 0.9, 0.1).expand(n, *data.shape)
    return {"x": torch.bernoulli(probs)}


def reconstruction_loss(data: DataSpec, out: torch.Tensor, batch: dict) -> torch.Tensor:
    """A plain per-example loss for each kind, averaged over the batch."""
    x = batch["x"]
    if data.kind == "tokens":
        nll = F.cross_entropy(out, x.long(), reduction="none")
        return (nll * (x != PAD_ID)).sum(1).mean()
    if data.kind == "counts":
        return F.poisson_nll_loss(out[:, 0], x, log_input=True, reduction="sum") / x.shape[0]
    return F.binary_cross_entropy_with_logits(out[:, 0], x, reduction="sum") / x.shape[0]


def make_pair(data_key: str, enc: str, dec: str, num_params: int = 1):
    data = DATA[data_key]
    if data.kind == "tokens":
        num_params = data.vocab_size
    encoder = registry.encoders.get(enc)(data, 2 * LATENT, **params_for(data_key, enc))
    decoder = registry.decoders.get(dec)(data, LATENT, num_params, **params_for(data_key, dec))
    return data, encoder, decoder


# --------------------------------------------------------------------------- registry, shapes


def test_registered_with_kinds():
    for name, enc, dec in [
        ("mlp", MLPEncoder, MLPDecoder),
        ("cnn", CNNEncoder, CNNDecoder),
        ("gru", GRUEncoder, GRUDecoder),
    ]:
        assert registry.encoders.get(name) is enc
        assert registry.decoders.get(name) is dec
    assert MLPEncoder.kinds == {"vectors", "counts", "grids"}
    assert CNNEncoder.kinds == CNNDecoder.kinds == {"grids"}
    assert GRUEncoder.kinds == GRUDecoder.kinds == {"tokens"}
    assert GRUDecoder.autoregressive and not CNNDecoder.autoregressive


@pytest.mark.parametrize("data_key,enc,dec", PAIRINGS)
def test_pairing_shapes(data_key, enc, dec):
    data, encoder, decoder = make_pair(data_key, enc, dec, num_params=2)
    batch = make_batch(data, n=3)
    h = encoder(batch["x"], batch.get("lengths"))
    assert h.shape == (3, 2 * LATENT)
    z = torch.randn(3, LATENT)
    out = decoder(z, batch["x"], batch.get("lengths"))
    if data.kind == "tokens":
        assert out.shape == (3, data.vocab_size, data.max_length)
    else:
        assert out.shape == (3, 2, *data.shape)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("data_key,enc,dec", PAIRINGS)
def test_training_steps_lower_the_loss(data_key, enc, dec):
    data, encoder, decoder = make_pair(data_key, enc, dec)
    batch = make_batch(data)
    params = list(encoder.parameters()) + list(decoder.parameters())
    opt = torch.optim.Adam(params, lr=3e-3)

    def loss() -> torch.Tensor:
        z = encoder(batch["x"], batch.get("lengths"))[:, :LATENT]
        return reconstruction_loss(data, decoder(z, batch["x"], batch.get("lengths")), batch)

    with torch.no_grad():
        before = loss().item()
    for _ in range(30):
        opt.zero_grad()
        value = loss()
        value.backward()
        opt.step()
    with torch.no_grad():
        after = loss().item()
    assert after < 0.9 * before, (before, after)


@pytest.mark.parametrize("shape", [(1, 27, 33), (3, 5, 7), (2, 1, 9), (1, 17), (2, 500)])
@pytest.mark.parametrize(
    "params",
    [
        {},
        {"kernel": 4},
        {"kernel": 5, "stride": [2, 1]},
        {"kernel": [3, 5], "stride": [3, 2]},
        {"stride": 1},
        {"upsample": "nearest"},
        {"upsample": "linear", "norm": "layer"},
        {"padding_mode": "circular", "norm": "batch"},
        {"padding_mode": "reflect"},
        {"hidden": [32, 16], "dropout": 0.1, "activation": "elu"},
        {"style": "heavy"},
        {"style": "heavy", "padding_mode": "circular"},
        {"style": "heavy", "kernel": 4, "upsample": "linear"},
        {"padding_mode": "circular", "kernel": 4, "stride": [2, 1]},
    ],
)
def test_cnn_any_size(shape, params):
    data = DataSpec("grids", shape)
    enc_params = {k: v for k, v in params.items() if k != "upsample"}
    if params.get("kernel") == 4 and min(shape[1:]) < 4:  # padding 1 cannot cover kernel 4
        with pytest.raises(SpecError, match="shrink data of shape"):
            CNNEncoder(data, 6, channels=[4, 8], **enc_params)
        return
    if params.get("padding_mode") == "reflect" and min(shape[1:]) < 2:  # nothing to reflect
        with pytest.raises(SpecError, match="too large for reflect padding"):
            CNNEncoder(data, 6, channels=[4, 8], **enc_params)
        return
    encoder = CNNEncoder(data, 6, channels=[4, 8], **enc_params)
    decoder = CNNDecoder(data, 3, 2, channels=[4, 8], **params)
    x = torch.rand(2, *shape)
    assert encoder(x).shape == (2, 6)
    out = decoder(torch.randn(2, 3))
    assert out.shape == (2, 2, *shape)


def test_cnn_sizes_from_data_not_hard_coded():
    encoder = CNNEncoder(DATA["odd27x33"], 8)
    assert encoder.geometry.kernels == [4, 4]
    assert encoder.geometry.sizes == [(27, 33), (13, 16), (6, 8)]
    assert encoder.features(torch.rand(1, 1, 27, 33)).shape == (1, 64, 6, 8)
    heavy = CNNEncoder(DATA["odd27x33"], 8, style="heavy")
    assert heavy.geometry.kernels == [3, 3]
    assert heavy.geometry.sizes == [(27, 33), (14, 17), (7, 9)]
    thin = CNNEncoder(DataSpec("grids", (2, 1, 9)), 8)  # kernel 4 cannot cover 1 row
    assert thin.geometry.kernels == [3, 3] and thin.geometry.sizes[-1] == (1, 3)
    mixed = CNNEncoder(DATA["image28"], 8, channels=[4, 4, 4], stride=[2, 1, 3])
    assert mixed.geometry.kernels == [4, 3, 3]
    spectra = CNNEncoder(DATA["spectra500"], 8, channels=[4, 4, 4], kernel=5)
    assert spectra.geometry.sizes == [(500,), (250,), (125,), (63,)]
    assert spectra.geometry.dims == 1


def test_cnn_uint8_input():
    data = DATA["image28"]
    encoder = CNNEncoder(data, 8, channels=[4])
    x = (torch.rand(2, 1, 28, 28) > 0.5).to(torch.uint8)
    assert torch.allclose(encoder(x), encoder(x.float()))


# --------------------------------------------------------------------------- circular padding


def test_circular_padding_wraps_stride_one():
    data = DATA["lattice32"]
    encoder = CNNEncoder(data, 8, channels=[4, 4], stride=1, padding_mode="circular")
    x = torch.randint(0, 2, (2, 1, 32, 32)).float() * 2 - 1
    shift = (5, -11)
    shifted = encoder.features(torch.roll(x, shift, dims=(2, 3)))
    assert torch.allclose(shifted, torch.roll(encoder.features(x), shift, dims=(2, 3)), atol=1e-5)


def test_circular_padding_wraps_strided():
    """Two stride-2 stages: a shift by 4 sites shifts the feature map by exactly 1."""
    data = DATA["lattice32"]
    encoder = CNNEncoder(data, 8, channels=[4, 4], padding_mode="circular")
    x = torch.randn(2, 1, 32, 32)
    shifted = encoder.features(torch.roll(x, (4, -8), dims=(2, 3)))
    assert torch.allclose(shifted, torch.roll(encoder.features(x), (1, -2), dims=(2, 3)), atol=1e-5)


def test_zero_padding_does_not_wrap():
    """The control: with zero padding the same check fails at the edges."""
    encoder = CNNEncoder(DATA["lattice32"], 8, channels=[4, 4], stride=1)
    x = torch.randn(2, 1, 32, 32)
    shifted = encoder.features(torch.roll(x, (5, -11), dims=(2, 3)))
    assert not torch.allclose(shifted, torch.roll(encoder.features(x), (5, -11), dims=(2, 3)))


@pytest.mark.parametrize("upsample", ["nearest", "transpose"])
def test_circular_decoder_upsampling_wraps(upsample):
    decoder = CNNDecoder(
        DATA["lattice32"], 4, 1, channels=[4, 4], padding_mode="circular", upsample=upsample
    )
    assert all(s.wrap for s in decoder.up[::3]) == (upsample == "transpose")
    h = torch.randn(2, 4, 8, 8)
    up = decoder.up
    expected = torch.roll(up(h), (4, 12), dims=(2, 3))  # x2, then x2 again
    assert torch.allclose(up(torch.roll(h, (1, 3), dims=(2, 3))), expected, atol=1e-5)


def test_circular_heavy_decoder_upsampling_wraps():
    decoder = CNNDecoder(
        DATA["lattice32"], 4, 1, channels=[4, 4], padding_mode="circular", style="heavy"
    )
    assert decoder.upsample == "nearest"
    h = torch.randn(2, 4, 8, 8)
    expected = torch.roll(decoder.out(decoder.up(h)), (4, 12), dims=(2, 3))
    shifted = decoder.out(decoder.up(torch.roll(h, (1, 3), dims=(2, 3))))
    assert torch.allclose(shifted, expected, atol=1e-5)


@pytest.mark.parametrize(
    "size,kernel,stride", [((32, 32), 4, 2), ((27, 33), 3, 2), ((16, 16), 5, 1), ((40,), 4, 2)]
)
def test_wrapped_transpose_is_the_adjoint_of_circular_conv(size, kernel, stride):
    """<conv(x), y> = <x, wrap_fold(conv_transpose(y))>: exactly the circular convolution's
    adjoint, for any size (odd ones too), so the decoder wraps the way the encoder does."""
    dims = len(size)
    pad = (kernel - 1) // 2
    conv = (torch.nn.Conv1d if dims == 1 else torch.nn.Conv2d)(
        3, 5, kernel, stride, pad, padding_mode="circular", bias=False
    )
    x = torch.randn(2, 3, *size, requires_grad=True)
    out = conv(x)
    y = torch.randn_like(out)
    (adjoint,) = torch.autograd.grad((out * y).sum(), x)
    transpose = torch.nn.functional.conv_transpose1d if dims == 1 else F.conv_transpose2d
    folded = wrap_fold(transpose(y, conv.weight, stride=stride), size, pad)
    assert torch.allclose(folded, adjoint, atol=1e-5)


def test_light_and_heavy_decoders():
    """light: the last upsampling stage makes the outputs; heavy (the old default) upsamples
    to channels[0] maps at full resolution and adds a 3x3 output conv."""
    data = DATA["image28"]
    light = CNNDecoder(data, 4, 2)
    heavy = CNNDecoder(data, 4, 2, style="heavy")
    assert (light.style, light.upsample, heavy.style, heavy.upsample) == (
        "light", "transpose", "heavy", "transpose"
    )
    convs = [m for m in light.up.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [m.out_channels for m in convs] == [32, 2]
    assert isinstance(light.out, torch.nn.Identity)
    convs = [m for m in heavy.up.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [m.out_channels for m in convs] == [32, 32]
    assert heavy.out.kernel_size == (3, 3) and heavy.out.out_channels == 2
    assert light.geometry.kernels == [4, 4] and heavy.geometry.kernels == [3, 3]
    z = torch.randn(3, 4)
    assert light(z).shape == heavy(z).shape == (3, 2, 1, 28, 28)
    circular = CNNDecoder(DATA["lattice32"], 4, 1, padding_mode="circular")
    assert circular.upsample == "nearest" and circular.geometry.kernels == [4, 4]
    convs = [m for m in circular.up.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [m.kernel_size for m in convs] == [(3, 3), (3, 3)]  # odd "same" convs after nearest


def test_circular_1d():
    data = DataSpec("grids", (2, 64))
    encoder = CNNEncoder(data, 8, channels=[4], stride=1, kernel=5, padding="circular")
    x = torch.randn(3, 2, 64)
    expected = torch.roll(encoder.features(x), 9, 2)
    assert torch.allclose(encoder.features(torch.roll(x, 9, 2)), expected, atol=1e-5)


# --------------------------------------------------------------------------- MLP specifics


def test_mlp_log1p_default_for_counts_only():
    counts = MLPEncoder(DATA["counts50"], 4, hidden=[])
    vectors = MLPEncoder(DataSpec("vectors", (50,)), 4, hidden=[])
    assert counts.log1p and not vectors.log1p
    x = torch.poisson(torch.full((2, 50), 30.0))
    assert torch.allclose(counts(x), counts.head(torch.log1p(x)))
    assert not MLPEncoder(DATA["counts50"], 4, log1p=False).log1p


def test_mlp_decoder_mirrors_hidden_and_options():
    decoder = MLPDecoder(
        DATA["vectors784"], 5, 1, hidden=[300, 100], norm="layer", dropout=0.1, activation="gelu"
    )
    linears = [m for m in decoder.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(5, 100), (100, 300), (300, 784)]
    assert any(isinstance(m, torch.nn.LayerNorm) for m in decoder.modules())
    assert any(isinstance(m, torch.nn.GELU) for m in decoder.modules())
    encoder = MLPEncoder(DATA["image28"], 8, hidden=[300, 100], norm="batch")
    linears = [m for m in encoder.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(784, 300), (300, 100), (100, 8)]


# --------------------------------------------------------------------------- GRU


def test_sequence_lengths_from_eos_or_padding():
    x = torch.tensor([[4, 5, 2, 0, 0], [4, 4, 4, 4, 2], [4, 5, 0, 0, 0], [2, 0, 0, 0, 0]])
    assert sequence_lengths(x).tolist() == [3, 5, 2, 1]


@pytest.mark.parametrize("bidirectional,layers", [(True, 1), (False, 1), (True, 2), (False, 2)])
def test_gru_encoder_ignores_padding_and_batch_order(bidirectional, layers):
    data = DATA["tokens24"]
    encoder = GRUEncoder(
        data, 6, embedding_dim=8, hidden_size=16, bidirectional=bidirectional, num_layers=layers
    ).eval()
    batch = make_batch(data, n=6)
    x, lengths = batch["x"], batch["lengths"]
    out = encoder(x, lengths)
    noisy = x.clone()
    beyond = torch.arange(x.shape[1])[None, :] >= lengths[:, None]
    noisy[beyond] = torch.randint(4, data.vocab_size, (int(beyond.sum()),))
    assert torch.allclose(encoder(noisy, lengths), out, atol=1e-6)  # packed: pads never seen
    order = torch.randperm(6)
    assert torch.allclose(encoder(x[order], lengths[order]), out[order], atol=1e-6)
    assert torch.allclose(encoder(x), out, atol=1e-6)  # lengths found from <eos>
    first = encoder(x[:1, : int(lengths[0])], lengths[:1])
    assert torch.allclose(first, out[:1], atol=1e-6)  # any padded width gives the same code


def check_valid_sequences(tokens: torch.Tensor, lengths: torch.Tensor, max_length: int) -> None:
    assert tokens.dtype == torch.long and tokens.shape[1] == max_length
    assert ((lengths >= 1) & (lengths <= max_length)).all()
    for row, length in zip(tokens.tolist(), lengths.tolist(), strict=True):
        body, rest = row[: length - 1], row[length:]
        assert row[length - 1] == EOS_ID  # every sequence ends, its length counts <eos>
        assert all(t not in (PAD_ID, BOS_ID, EOS_ID, UNK_ID) for t in body)
        assert all(t == PAD_ID for t in rest)


@pytest.mark.parametrize("condition", ["both", "init", "input"])
def test_gru_generates_valid_sequences(condition):
    data = DATA["tokens24"]
    decoder = GRUDecoder(
        data, LATENT, data.vocab_size, embedding_dim=8, hidden_size=16, condition=condition
    ).eval()
    # make <eos> unlikely so that many sequences run to max_length and must be closed there
    with torch.no_grad():
        decoder.out.bias[EOS_ID] = -3.0
        decoder.out.bias[[PAD_ID, BOS_ID, UNK_ID]] = 10.0  # must still never appear
    z = torch.randn(64, LATENT)
    tokens, lengths = decoder.generate(z)
    check_valid_sequences(tokens, lengths, data.max_length)
    assert (lengths == data.max_length).any() and (lengths < data.max_length).any()
    tokens, lengths = decoder.generate(z, max_length=7, temperature=0.5)
    check_valid_sequences(tokens, lengths, 7)
    greedy = decoder.generate(z, greedy=True)
    check_valid_sequences(*greedy, data.max_length)
    again = decoder.generate(z, greedy=True)
    assert torch.equal(greedy[0], again[0]) and torch.equal(greedy[1], again[1])


def test_gru_teacher_forcing_matches_generation():
    """Teacher forcing on a generated sequence gives, at every position, the logits that the
    step-by-step decoder produced: the <bos> shift and the z conditioning agree."""
    data = DATA["tokens24"]
    decoder = GRUDecoder(data, LATENT, data.vocab_size, embedding_dim=8, hidden_size=16).eval()
    z = torch.randn(16, LATENT)
    tokens, lengths = decoder.generate(z, greedy=True)
    with torch.no_grad():
        forced = decoder(z, tokens, lengths)
        h = decoder.initial_state(z)
        previous = torch.full((16,), BOS_ID)
        for t in range(data.max_length):
            logits, h = decoder.step(previous, z, h)
            assert torch.allclose(logits, forced[:, :, t], atol=1e-5), t
            previous = tokens[:, t]
    forced[:, [PAD_ID, BOS_ID, UNK_ID]] = -torch.inf
    predicted = forced.argmax(1)
    for i, length in enumerate(lengths.tolist()):
        if length < data.max_length:  # a forced final <eos> is not the model's choice
            assert torch.equal(predicted[i, :length], tokens[i, :length])
    free = decoder(z)  # no x: greedy free-running logits
    assert free.shape == (16, data.vocab_size, data.max_length)
    assert torch.equal(_masked_argmax(free)[:, 0], tokens[:, 0])


def _masked_argmax(logits: torch.Tensor) -> torch.Tensor:
    logits = logits.clone()
    logits[:, [PAD_ID, BOS_ID, UNK_ID]] = -torch.inf
    return logits.argmax(1)


def test_gru_sampling_temperature():
    """Low temperature concentrates on the greedy choice, high temperature spreads out."""
    data = DATA["tokens24"]
    decoder = GRUDecoder(data, LATENT, data.vocab_size, embedding_dim=8, hidden_size=16).eval()
    with torch.no_grad():
        decoder.out.bias.copy_(torch.linspace(0.0, 2.0, data.vocab_size))
    z = torch.zeros(400, LATENT)
    greedy_first = decoder.generate(z[:1], greedy=True)[0][0, 0]
    cold = decoder.generate(z, temperature=0.05)[0][:, 0]
    hot = decoder.generate(z, temperature=5.0)[0][:, 0]
    assert (cold == greedy_first).float().mean() > 0.95
    assert (hot == greedy_first).float().mean() < 0.5
    assert len(hot.unique()) > len(cold.unique())
    with pytest.raises(SpecError, match="temperature"):
        decoder.generate(z, temperature=0)


def test_gru_word_dropout_only_in_training():
    data = DATA["tokens24"]
    decoder = GRUDecoder(
        data, LATENT, data.vocab_size, embedding_dim=8, hidden_size=16, word_dropout=0.5
    )
    batch = make_batch(data, n=4)
    z = torch.randn(4, LATENT)
    decoder.train()
    assert not torch.allclose(decoder(z, batch["x"]), decoder(z, batch["x"]))
    decoder.eval()
    assert torch.allclose(decoder(z, batch["x"]), decoder(z, batch["x"]))


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: CNNEncoder(DATA["image28"], 4, channels=[]), "encoder 'cnn': channels"),
        (lambda: CNNEncoder(DATA["image28"], 4, channels=[8, "x"]), "encoder 'cnn': channels"),
        (lambda: CNNEncoder(DATA["image28"], 4, kernel=[3, 3, 3]), "encoder 'cnn': kernel"),
        (lambda: CNNEncoder(DATA["image28"], 4, channels=[4] * 6, kernel=4), "shrink"),
        (lambda: CNNEncoder(DATA["image28"], 4, padding_mode="wrap"), "padding_mode"),
        (
            lambda: CNNEncoder(DATA["image28"], 4, padding_mode="zeros", padding="circular"),
            "not both",
        ),
        (
            lambda: CNNDecoder(
                DATA["lattice32"], 4, 1, padding_mode="reflect", upsample="transpose"
            ),
            "decoder 'cnn': upsample",
        ),
        (lambda: CNNDecoder(DATA["image28"], 4, 1, upsample="cubic"), "upsample"),
        (lambda: CNNDecoder(DATA["image28"], 4, 1, style="medium"), "decoder 'cnn': style"),
        (lambda: MLPEncoder(DATA["vectors784"], 4, activation="swish"), "'mlp': activation"),
        (lambda: MLPDecoder(DATA["vectors784"], 4, 1, norm="group"), "decoder 'mlp': norm"),
        (lambda: MLPDecoder(DATA["vectors784"], 4, 1, dropout=1.5), "dropout"),
        (lambda: GRUDecoder(DATA["tokens24"], 4, 2), "decoder 'gru'.*categorical"),
        (lambda: GRUDecoder(DATA["tokens24"], 4, 12, condition="none"), "condition"),
        (lambda: GRUEncoder(DATA["tokens24"], 4, hidden_size=0), "encoder 'gru': hidden_size"),
    ],
)
def test_bad_params_fail_with_one_line_spec_error(make, match):
    with pytest.raises(SpecError, match=match) as info:
        make()
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------- through build()


def spec_for(data_key: str, enc: str, dec: str, model: str = "vae", **extra) -> dict:
    return {
        "model": model,
        "latent_dim": LATENT,
        "data": DATA[data_key].to_dict(),
        "encoder": {"name": enc, "params": params_for(data_key, enc)},
        "decoder": {"name": dec, "params": params_for(data_key, dec)},
        **extra,
    }


BUILD_CASES = [(*pairing, "vae", None) for pairing in PAIRINGS] + [
    ("image28", "cnn", "cnn", "ae", None),
    ("tokens24", "gru", "gru", "ae", None),
    (
        "spectra500",
        "cnn",
        "cnn",
        "vae",
        {"name": "gaussian", "params": {"variance": "learned_per_value"}},
    ),
    ("vectors784", "mlp", "mlp", "ae", "gaussian"),
]


@pytest.mark.parametrize("data_key,enc,dec,model,likelihood", BUILD_CASES)
def test_built_model_trains(data_key, enc, dec, model, likelihood):
    import genlatent

    extra = {"likelihood": likelihood} if likelihood else {}
    net = genlatent.build(spec_for(data_key, enc, dec, model, **extra))
    batch = make_batch(net.data)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    net.eval()  # no dropout/batch-norm noise in the before/after comparison
    with torch.no_grad():
        before = net.loss(batch)[0].item()
    net.train()
    for step in range(30):
        opt.zero_grad()
        loss, metrics = net.loss(batch, step)
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        after = net.loss(batch)[0].item()
    assert after < before - 0.1 * abs(before), (before, after)


@pytest.mark.parametrize(
    "data,only",
    [
        ({"kind": "grids", "shape": [1, 27, 33]}, {"encoder": "cnn"}),
        ({"kind": "grids", "shape": [1, 500]}, {"encoder": "cnn", "decoder": "cnn"}),
        ({"kind": "vectors", "shape": [784]}, {}),
        ({"kind": "counts", "shape": [30]}, {}),
        ({"kind": "tokens", "shape": [24], "vocab": list(VOCAB)}, {}),
    ],
)
def test_defaults_from_the_data_alone(data, only):
    """Naming only the network (or nothing) gives a working model sized from the data."""
    import genlatent

    net = genlatent.build({"data": data, "latent_dim": LATENT, **only})
    batch = make_batch(net.data, n=2)
    loss, _ = net.loss(batch)
    assert torch.isfinite(loss)
    out = net.decode(torch.randn(2, LATENT), batch["x"], batch.get("lengths"))
    if net.data.kind == "tokens":
        assert out.shape == (2, net.data.vocab_size, net.data.max_length)
    else:
        assert out.shape == (2, net.likelihood.num_params, *net.data.shape)


@pytest.mark.parametrize(
    "data_key,changes,match",
    [
        ("vectors784", {"encoder": "cnn"}, "encoder 'cnn' does not fit vectors data"),
        ("image28", {"decoder": "gru", "likelihood": "gaussian"}, "decoder 'gru' does not fit"),
        ("image28", {"encoder": "gru"}, "encoder 'gru' does not fit grids"),
        ("tokens24", {"decoder": "mlp"}, "decoder 'mlp' does not fit tokens"),
        ("tokens24", {"decoder": "cnn"}, "decoder 'cnn' does not fit tokens"),
        ("image28", {"encoder": {"name": "cnn", "params": {"chanels": [8]}}}, "encoder 'cnn'"),
        (
            "image28",
            {"decoder": {"name": "cnn", "params": {"channels": [8] * 6, "kernel": 4}}},
            "decoder 'cnn'.*shrink",
        ),
    ],
)
def test_mismatch_fails_at_build_time(data_key, changes, match):
    import genlatent

    spec = {"data": DATA[data_key].to_dict(), "latent_dim": LATENT, **changes}
    with pytest.raises(SpecError, match=match) as info:
        genlatent.build(spec)
    assert "\n" not in str(info.value)


def test_gru_rejects_a_likelihood_that_is_not_one_categorical():
    """A token likelihood wanting 2 maps per value (say a plugin's) is refused by the decoder."""
    from genlatent.parts import Likelihood

    class TwoMaps(Likelihood):
        kinds = frozenset({"tokens"})
        num_params = 2

    registry.likelihoods.add("two_maps_for_test", TwoMaps)
    try:
        import genlatent

        with pytest.raises(SpecError, match="decoder 'gru'.*categorical"):
            genlatent.build({"data": DATA["tokens24"].to_dict(), "likelihood": "two_maps_for_test"})
    finally:
        registry.likelihoods.unregister("two_maps_for_test")


@pytest.mark.parametrize(
    "data_key,enc,dec", [("lattice32", "cnn", "cnn"), ("tokens24", "gru", "gru")]
)
def test_save_load_round_trip(tmp_path, data_key, enc, dec):
    import genlatent

    net = genlatent.build(spec_for(data_key, enc, dec)).eval()
    batch = make_batch(net.data, n=3)
    net.save(tmp_path / "m")
    same = genlatent.load(tmp_path / "m").eval()
    with torch.no_grad():
        z = net.encode_mean(batch["x"], batch.get("lengths"))
        assert torch.allclose(same.encode_mean(batch["x"], batch.get("lengths")), z)
        assert torch.allclose(
            same.decode(z, batch["x"], batch.get("lengths")),
            net.decode(z, batch["x"], batch.get("lengths")),
        )
