"""Using a trained model: ``encode``, ``decode``, ``reconstruct``, ``sample``, ``interpolate``.

Each reads a run folder (or a model folder) and writes one HDF5 file atomically; a summary
of what was written goes to stdout.
"""

from __future__ import annotations

from typing import Any

import click

from ._common import (
    batch_size_option,
    default_key,
    device_option,
    int_option,
    key_option,
    load_model,
    open_dataset,
    progress,
    run_argument,
    seed_option,
    seeded,
)

_OUT = click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False),
    help="HDF5 file to write (replaced atomically).",
)
_SEED = seed_option("Seed of every random draw: the same command gives the same file.")


def _summary(path: str, arrays: dict[str, Any]) -> None:
    parts = []
    for name, item in arrays.items():
        array = item[0] if isinstance(item, tuple) else item
        parts.append(f"{name} {tuple(array.shape)}")
    click.echo(f"wrote {path}: " + ", ".join(parts))


def _provenance(run: str, model: Any, **extra: Any) -> dict[str, Any]:
    from .._version import __version__

    out = {
        "run": str(run),
        "model": model.spec.get("model"),
        "latent_dim": model.latent_dim,
        "genlatent_version": __version__,
    }
    out.update({k: v for k, v in extra.items() if v is not None})
    return out


def _tokens(model: Any) -> bool:
    return model.data.kind == "tokens"


def _keep_mean(model: Any, temperature: float, draw: bool) -> bool:
    """Decode to the mean? Token data follow --temperature (0: greedy, else sampled at it);
    other data take the likelihood's mean unless --draw."""
    return temperature == 0 if _tokens(model) else not draw


def _condition_arrays(model: Any, encoded: Any) -> dict[str, Any]:
    """The conditions of generated rows as datasets named by their columns (numbers, or
    category names as UTF-8 bytes), so an output file says what it was made at."""
    import numpy as np

    from ..analysis.h5out import fixed_bytes

    out: dict[str, Any] = {}
    for name, values in model.conditions.decode(np.asarray(encoded)).items():
        out[name] = fixed_bytes(list(values)) if values.dtype == object else values
    return out


def _codes_conditions(model: Any, codes: str, f: Any, n: int) -> Any:
    """A conditional model's encoded conditions read from the codes file's datasets named
    by the condition columns (as `genlatent encode` carries them)."""
    import numpy as np

    from ..data.rows import label_values
    from ..errors import DataError

    parts = []
    for column in model.conditions.columns:
        node = f.get(column.name)
        if node is None or not hasattr(node, "shape") or node.shape != (n,):
            raise DataError(
                f"{codes}: no dataset {column.name!r} of {n} values; the model is conditioned "
                f"on {', '.join(model.conditions.names)}"
            )
        where = f"{codes}:{column.name}"
        values, names = label_values(where, node[()])
        if names is None and "label_names" in node.attrs:
            import json

            from ..data.h5file import decode_attr

            raw = decode_attr(node.attrs["label_names"])
            names = json.loads(raw) if isinstance(raw, str) else list(raw)
        parts.append(column.encode(where, values, names))
    return np.concatenate(parts, axis=1)


def _print_strings(arrays: dict[str, Any], limit: int = 10) -> None:
    if "strings" in arrays:
        values = arrays["strings"][0]
        for value in values[:limit]:
            click.echo(value.decode("utf-8"))
        if len(values) > limit:
            click.echo(f"... ({len(values) - limit} more in the file)")


@click.command("encode", short_help="Posterior means and scales of a dataset, to HDF5.")
@run_argument
@click.argument("data", type=click.Path(dir_okay=False))
@_OUT
@key_option
@_SEED
@batch_size_option()
@device_option
def encode_command(
    run: str, data: str, out: str, key: str | None, seed: int, batch_size: int, device: str
) -> None:
    """Encode every example of DATA with the model of RUN: posterior means and scales.

    The file gets mean (N, D), scale (N, D) (VAE), index (the rows of DATA) and every 1-D
    dataset of DATA aligned with the examples (labels), under the same names. Its "mean" can
    be read like any dataset (key mean), e.g. by `genlatent decode`. An --out ending in .h5ad
    (DATA an .h5ad) is instead a copy of DATA with obsm["X_genlatent"] (means) and
    obsm["X_genlatent_scale"], for anndata / scanpy.

    \b
    Example:
      genlatent encode runs/quick datasets/samples/fashion_mnist_test_500.h5 \\
          --out runs/quick/latents.h5
      genlatent encode runs/cells cells.h5ad --out cells_latent.h5ad
    """
    from ..analysis import h5out, inference
    from ..errors import DataError

    to_h5ad = out.lower().endswith(".h5ad")
    if to_h5ad and not data.lower().endswith(".h5ad"):
        raise DataError(f"--out {out}: an .h5ad output needs an .h5ad input, got {data}")
    model = load_model(run, device)
    dataset = open_dataset(data, key or default_key(run), labels=True)
    inference.check_compatible(model, dataset)
    progress(f"encoding {len(dataset)} examples of {dataset.where}")
    with seeded(seed, model.device):  # posteriors without closed-form moments draw
        codes = inference.encode_dataset(model, dataset, batch_size, model.device)
    if to_h5ad:  # back into the AnnData: obsm["X_genlatent"] (genlatent.analysis.h5ad_out)
        from ..analysis.h5ad_out import write_h5ad_latents

        provenance = _provenance(run, model, source=data, key=dataset.key, seed=seed)
        write_h5ad_latents(data, out, codes["mean"], codes.get("scale"), provenance=provenance)
        click.echo(f"wrote {out}: obsm X_genlatent {tuple(codes['mean'].shape)}")
        return
    arrays: dict[str, Any] = {"mean": (codes["mean"], {"kind": "vectors"})}
    if "scale" in codes:
        arrays["scale"] = codes["scale"]
    arrays["index"] = codes["index"]
    arrays.update(h5out.carried_labels(dataset, codes["index"], set(arrays)))
    h5out.write_h5(out, arrays, _provenance(run, model, source=data, key=dataset.key))
    _summary(out, arrays)


@click.command("decode", short_help="Decode latent codes from an HDF5 file.")
@run_argument
@click.argument("codes", type=click.Path(dir_okay=False))
@_OUT
@click.option(
    "--key", default=None, help="Dataset of codes (N, D) in CODES.  [default: mean, else z]"
)
@click.option(
    "--draw", is_flag=True, help="Non-token data: a draw from the likelihood instead of its mean."
)
@click.option(
    "--temperature",
    type=click.FloatRange(min=0.0),
    default=1.0,
    show_default=True,
    help="Token data: sampling temperature of the decoder (0: greedy).",
)
@_SEED
@batch_size_option()
@device_option
def decode_command(
    run: str,
    codes: str,
    out: str,
    key: str | None,
    draw: bool,
    temperature: float,
    seed: int,
    batch_size: int,
    device: str,
) -> None:
    """Decode latent codes (a (N, D) dataset in the HDF5 file CODES) into data.

    CODES is typically written by `genlatent encode` (key mean) or `genlatent sample` /
    `genlatent interpolate` (key z). 1-D datasets aligned with the codes are carried over.

    \b
    A conditional model reads its conditions from the datasets of CODES named like its
    condition columns (`genlatent encode` writes them).

    \b
    Example:
      genlatent decode runs/quick runs/quick/latents.h5 --out runs/quick/decoded.h5
    """
    import numpy as np

    from ..analysis import h5out, inference
    from ..data.h5 import open_h5
    from ..errors import DataError

    model = load_model(run, device)
    with open_h5(codes) as f:
        if key is None:
            key = "mean" if "mean" in f else "z" if "z" in f else None
            if key is None:
                raise DataError(f"{codes}: no 'mean' or 'z' dataset; name the codes with --key")
        if key not in f or not hasattr(f[key], "shape"):
            raise DataError(f"{codes}: no dataset {key!r}; datasets: {', '.join(f.keys())}")
        z = np.asarray(f[key][()])
        condition = (
            _codes_conditions(model, codes, f, z.shape[0]) if model.condition_dim else None
        )
        carried = {
            name: f[name][()]
            for name in f
            if name not in (key, "scale")
            and hasattr(f[name], "shape")
            and f[name].ndim == 1
            and f[name].shape[0] == z.shape[0]
        }
    if z.ndim != 2 or z.shape[1] != model.latent_dim or z.dtype.kind not in "iuf":
        raise DataError(
            f"{codes}:{key}: expected codes of shape (N, {model.latent_dim}), got "
            f"{z.dtype} {list(z.shape)}"
        )
    progress(f"decoding {z.shape[0]} codes from {codes}:{key}")
    with seeded(seed, model.device):
        result = inference.decode_codes(
            model, z, batch_size=batch_size, temperature=temperature,
            mean=_keep_mean(model, temperature, draw), condition=condition,
        )
    arrays: dict[str, Any] = dict(h5out.data_arrays(model.data, result))
    arrays["z"] = z.astype(np.float32)
    arrays.update({k: v for k, v in carried.items() if k not in arrays})
    h5out.write_h5(
        out, arrays, _provenance(run, model, source=codes, key=key, seed=seed,
                                 temperature=temperature if _tokens(model) else None)
    )
    _summary(out, arrays)
    _print_strings(arrays)


@click.command("reconstruct", short_help="Reconstructions of a dataset, to HDF5.")
@run_argument
@click.argument("data", type=click.Path(dir_okay=False))
@_OUT
@key_option
@click.option(
    "-n",
    "limit",
    type=click.IntRange(min=1),
    default=None,
    help="Only the first N examples.  [default: all]",
)
@_SEED
@batch_size_option()
@device_option
def reconstruct_command(
    run: str,
    data: str,
    out: str,
    key: str | None,
    limit: int | None,
    seed: int,
    batch_size: int,
    device: str,
) -> None:
    """Reconstruct examples of DATA: encode to the posterior mean, decode to the mean.

    The file gets x (the reconstructions, same layout as DATA), z (the codes), index (the rows
    of DATA), the labels of DATA and, for token data, lengths and strings.

    \b
    Example:
      genlatent reconstruct runs/quick datasets/samples/fashion_mnist_test_500.h5 -n 64 \\
          --out runs/quick/recon.h5
    """
    from ..analysis import h5out, inference

    model = load_model(run, device)
    dataset = open_dataset(data, key or default_key(run), labels=True)
    inference.check_compatible(model, dataset)
    count = len(dataset) if limit is None else min(limit, len(dataset))
    progress(f"reconstructing {count} examples of {dataset.where}")
    with seeded(seed, model.device):
        result = inference.reconstruct_dataset(
            model, dataset, batch_size=batch_size, device=model.device, limit=limit
        )
    arrays: dict[str, Any] = dict(h5out.data_arrays(model.data, result))
    arrays["z"] = result["z"]
    arrays["index"] = result["index"]
    arrays.update(h5out.carried_labels(dataset, result["index"], set(arrays)))
    h5out.write_h5(out, arrays, _provenance(run, model, source=data, key=dataset.key))
    _summary(out, arrays)
    _print_strings(arrays)


@click.command("sample", short_help="Samples from the prior, to HDF5.")
@run_argument
@click.option("-n", "count", type=click.IntRange(min=1), required=True, help="Number of samples.")
@_OUT
@click.option(
    "--temperature",
    type=click.FloatRange(min=0.0),
    default=1.0,
    show_default=True,
    help="Token data: sampling temperature of the decoder (0: greedy).",
)
@click.option(
    "--draw", is_flag=True, help="Non-token data: a draw from the likelihood instead of its mean."
)
@click.option(
    "--canonical",
    is_flag=True,
    help="Molecules: write strings as RDKit canonical SMILES (\"\" where RDKit cannot parse).",
)
@click.option(
    "--condition",
    "conditions",
    multiple=True,
    metavar="NAME=VALUE",
    help="Conditional models: generate at this value of condition NAME (a number, or a "
    "category by name); one per condition column (repeatable).",
)
@_SEED
@batch_size_option()
@device_option
def sample_command(
    run: str,
    count: int,
    out: str,
    temperature: float,
    draw: bool,
    canonical: bool,
    conditions: tuple[str, ...],
    seed: int,
    batch_size: int,
    device: str,
) -> None:
    """Draw N codes from the prior of RUN and decode them.

    The file gets z (N, D) and x (N, ...) in the layout of the training data; for token data
    x holds ids, with lengths and the decoded strings (fixed-length UTF-8 bytes), and the
    first strings are printed.

    \b
    Token data are sampled token by token at --temperature (1: the model's own
    probabilities, lower: closer to the greedy decode, 0: greedy, one sequence per code);
    other data give the decoder's mean at each code, or a draw from the likelihood (--draw).

    \b
    A conditional model generates at the --condition values given, written into the file
    as datasets named by the conditions.

    \b
    Examples:
      genlatent sample runs/quick -n 64 --out runs/quick/samples.h5
      genlatent sample runs/ising -n 500 --condition T=2.0 --draw --out t2.h5
      genlatent sample runs/cells -n 100 --condition cell_type=B --out b_cells.h5
      genlatent sample runs/smiles -n 100 --temperature 0.7 --out smiles.h5
      genlatent sample runs/smiles -n 100 --temperature 0 --seed 3 --out greedy.h5
    """
    from ..analysis import h5out, inference
    from ..conditions import parse_values
    from ..errors import DataError

    model = load_model(run, device)
    encoded = None
    if conditions and not model.condition_dim:
        raise DataError(f"--condition: the model in {run} is not conditional")
    if model.condition_dim:
        encoded = model.conditions.encode_values(parse_values(conditions), count)
    if not _tokens(model) and temperature != 1.0:
        progress("note: --temperature only applies to token data; ignored")
    if _tokens(model) and draw:
        progress("note: --draw only applies to non-token data; token data follow --temperature")
    progress(f"sampling {count} examples")
    with seeded(seed, model.device):
        result = inference.sample_prior(
            model, count, temperature=temperature, batch_size=batch_size,
            mean=_keep_mean(model, temperature, draw), condition=encoded,
        )
    arrays: dict[str, Any] = dict(h5out.data_arrays(model.data, result))
    if canonical and "strings" in arrays:
        from ..analysis.molecules import canonical_smiles_array

        arrays["strings"] = canonical_smiles_array(arrays["strings"])
    arrays["z"] = result["z"]
    if encoded is not None:
        arrays.update({k: v for k, v in _condition_arrays(model, encoded).items()
                       if k not in arrays})
    h5out.write_h5(out, arrays, _provenance(
        run, model, seed=seed, temperature=temperature if _tokens(model) else None, draw=draw
    ))
    _summary(out, arrays)
    _print_strings(arrays)


@click.command("interpolate", short_help="Decoded paths between pairs of examples.")
@run_argument
@click.argument("data", type=click.Path(dir_okay=False))
@_OUT
@key_option
@click.option(
    "--pair",
    "pairs",
    type=(int, int),
    multiple=True,
    metavar="I J",
    help="Interpolate from row I to row J of DATA (repeatable).",
)
@int_option(
    "--pairs",
    "random_pairs",
    default=4,
    minimum=1,
    help="Without --pair: this many random pairs of rows.",
)
@int_option(
    "--steps",
    default=8,
    minimum=2,
    help="Points along each path, both ends included.",
)
@click.option(
    "--method",
    type=click.Choice(["linear", "slerp"]),
    default="linear",
    show_default=True,
    help="Straight line or great circle between the codes.",
)
@_SEED
@batch_size_option()
@device_option
def interpolate_command(
    run: str,
    data: str,
    out: str,
    key: str | None,
    pairs: tuple[tuple[int, int], ...],
    random_pairs: int,
    steps: int,
    method: str,
    seed: int,
    batch_size: int,
    device: str,
) -> None:
    """Decode points on the path between the codes (posterior means) of pairs of examples.

    The file gets x and z with P*S rows (P paths of S steps, path by path), pair (the path
    of each row), t (0 to 1 along it) and the attribute rows (the rows of DATA at both ends).

    \b
    Examples:
      genlatent interpolate runs/quick datasets/samples/fashion_mnist_test_500.h5 \\
          --pair 0 1 --pair 2 3 --steps 10 --out runs/quick/interp.h5
    """
    import numpy as np

    from ..analysis import h5out, inference
    from ..errors import DataError

    model = load_model(run, device)
    dataset = open_dataset(data, key or default_key(run))
    inference.check_compatible(model, dataset)
    n = len(dataset)
    if pairs:
        ends = np.asarray(pairs, dtype=np.int64)
        bad = ends[(ends < 0) | (ends >= n)]
        if bad.size:
            raise DataError(f"--pair: row {int(bad[0])} is outside {dataset.where} (0..{n - 1})")
    else:
        ends = inference.random_pairs(n, random_pairs, seed)
    progress(f"decoding {len(ends)} paths of {steps} steps ({method})")
    with seeded(seed, model.device):
        result = inference.interpolate_pairs(
            model, dataset, ends, steps, method, batch_size=batch_size
        )
    flat = result.pop("z")
    arrays: dict[str, Any] = dict(h5out.data_arrays(model.data, result))
    arrays["z"] = flat
    arrays["pair"] = np.repeat(np.arange(len(ends)), steps).astype(np.int64)
    arrays["t"] = np.tile(np.linspace(0.0, 1.0, steps), len(ends)).astype(np.float32)
    attrs = _provenance(
        run, model, source=data, key=dataset.key, method=method, steps=steps, seed=seed
    )
    attrs["rows"] = ends.tolist()
    h5out.write_h5(out, arrays, attrs)
    _summary(out, arrays)
    _print_strings(arrays)
