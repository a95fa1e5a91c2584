"""``genlatent plugins`` and ``genlatent info``: what is installed, what a file or run holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ._common import emit_json


@click.command("plugins", short_help="Registered parts by kind, with their providers.")
def plugins_command() -> None:
    """List every registered part by kind, with the package that provided it.

    Plugins that failed to load are listed with the reason; they do not stop the others.

    \b
    Example:
      genlatent plugins
    """
    from .. import registry

    registry.ensure_loaded()
    for kind, reg in registry.REGISTRIES.items():
        click.echo(f"{kind}:")
        for entry in reg.entries():
            version = f" {entry.provider_version}" if entry.provider_version else ""
            click.echo(f"  {entry.name:<24} {entry.provider}{version}")
    errors = registry.plugin_errors()
    if errors:
        click.echo("failed plugins:")
        for name, reason in errors.items():
            click.echo(f"  {name}: {reason}")


@click.command("info", short_help="What an HDF5 file or a run folder holds.")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def info_command(path: Path, as_json: bool) -> None:
    """Describe an HDF5 file (datasets, shapes, dtypes, attributes) or a run folder (model
    spec, parts, versions, metrics, checkpoints).

    \b
    Examples:
      genlatent info datasets/samples/fashion_mnist_2k.h5
      genlatent info runs/quick
      genlatent info runs/quick --json
    """
    from ..analysis.h5info import describe_h5
    from ..analysis.runs import describe_run
    from ..errors import DataError

    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    summary = describe_run(path) if path.is_dir() else describe_h5(path)
    if as_json:
        emit_json(summary)
    elif path.is_dir():
        _print_run(summary)
    else:
        _print_h5(summary)


def _fmt(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _print_h5(info: dict[str, Any]) -> None:
    click.echo(f"{info['path']}: HDF5, {len(info['datasets'])} dataset(s)")
    for key, value in info["attrs"].items():
        click.echo(f"  @{key} = {_fmt(value)}")
    width = max([len(k) for k in info["datasets"]] + [4])
    for name, ds in info["datasets"].items():
        shape = (
            "("
            + ", ".join(str(s) for s in ds["shape"])
            + ("," if len(ds["shape"]) == 1 else "")
            + ")"
        )
        click.echo(f"  {name:<{width}}  {shape:<22} {ds['dtype']}")
        for key, value in ds["attrs"].items():
            click.echo(f"  {'':<{width}}    @{key} = {_fmt(value)}")


def _part_line(entry: Any) -> str:
    if isinstance(entry, dict):
        params = entry.get("params") or {}
        return entry.get("name", "?") + (f" {json.dumps(params, sort_keys=True)}" if params else "")
    return str(entry)


def _print_run(info: dict[str, Any]) -> None:
    spec = info.get("spec") or {}
    data = spec.get("data", {})
    where = info.get("run_dir", info["model_dir"])
    click.echo(f"{where}: genlatent {'run' if 'run_dir' in info else 'model'}")
    click.echo(
        f"  model: {spec.get('model')}, latent_dim {spec.get('latent_dim')}, "
        f"data {data.get('kind')} {data.get('shape')}"
        + (f" (vocab {len(data['vocab'])} tokens)" if data.get("vocab") else "")
    )
    for field in ("encoder", "decoder", "posterior", "prior", "likelihood"):
        if field in spec:
            click.echo(f"  {field + ':':<12}{_part_line(spec[field])}")
    if spec.get("objective"):
        click.echo(f"  {'objective:':<12}{json.dumps(spec['objective'], sort_keys=True)}")
    plugins = info.get("plugins") or {}
    click.echo(
        f"  saved by genlatent {info.get('genlatent_version')}, torch {info.get('torch_version')}"
        + (", plugins: " + ", ".join(f"{k} {v}" for k, v in plugins.items()) if plugins else "")
    )
    config = info.get("config")
    if config:
        data_cfg = config.get("data", {})
        click.echo(f"  trained on: {data_cfg.get('path')} key {data_cfg.get('key')!r}")
        if config.get("train"):
            click.echo(f"  training: {json.dumps(config['train'], sort_keys=True)}")
    metrics = info.get("metrics")
    if metrics is not None:
        if not metrics.get("rows"):
            click.echo("  metrics: none recorded")
        else:
            last = metrics.get("last", {})
            shown = {k: v for k, v in last.items() if "loss" in k or "elbo" in k or k == "epoch"}
            click.echo(
                f"  metrics: {metrics['rows']} rows"
                + (f", {metrics['epochs']} epochs" if "epochs" in metrics else "")
            )
            if shown:
                click.echo(
                    "  last: " + ", ".join(f"{k} {_num(v)}" for k, v in sorted(shown.items()))
                )
            if metrics.get("best"):
                click.echo(
                    "  best: "
                    + ", ".join(f"{k} {_num(v)}" for k, v in sorted(metrics["best"].items()))
                )
    if info.get("checkpoints"):
        click.echo("  checkpoints: " + ", ".join(info["checkpoints"]))


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
