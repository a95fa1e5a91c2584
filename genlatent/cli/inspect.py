"""``genlatent plugins`` and ``genlatent info``: what is installed, what a file or run holds."""

from __future__ import annotations

import json
import warnings
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
    """Describe an HDF5 file (datasets, shapes, dtypes, attributes) or a run folder (the
    resolved architecture: every part with all its parameters and its parameter count; the
    spec format and the genlatent version that saved it; metrics, checkpoints).

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
    if path.is_dir():
        summary["architecture"] = architecture(summary["model_dir"], summary.get("spec"))
    if as_json:
        emit_json(summary)
    elif path.is_dir():
        _print_run(summary)
    else:
        _print_h5(summary)


def architecture(model_dir: str | Path, saved_spec: Any) -> dict[str, Any]:
    """The saved model's resolved spec and parameter counts (the model is loaded, so a
    format-1 file shows the values it is rebuilt with), or the reason it cannot be loaded."""
    from ..errors import GenlatentError
    from ..serialization import load_model
    from ..spec import PART_KINDS

    spec_format = saved_spec.get("genlatent_spec", 1) if isinstance(saved_spec, dict) else None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = load_model(model_dir)
    except GenlatentError as exc:
        return {"spec_format": spec_format, "error": str(exc)}
    parameters = {}
    for field in PART_KINDS:
        part = getattr(model, field, None)
        if part is not None:
            parameters[field] = sum(p.numel() for p in part.parameters())
    return {
        "spec_format": spec_format,
        "resolved_spec": model.spec,
        "parameters": parameters,
        "total_parameters": sum(p.numel() for p in model.parameters()),
        "notes": [str(w.message) for w in caught],
    }


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


def _params_line(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={json.dumps(v)}" for k, v in sorted(params.items())) or "(none)"


def _print_run(info: dict[str, Any]) -> None:
    arch = info.get("architecture") or {}
    spec = arch.get("resolved_spec") or info.get("spec") or {}
    data = spec.get("data", {})
    where = info.get("run_dir", info["model_dir"])
    click.echo(f"{where}: genlatent {'run' if 'run_dir' in info else 'model'}")
    click.echo(
        f"  model: {spec.get('model')}, latent_dim {spec.get('latent_dim')}, "
        f"data {data.get('kind')} {data.get('shape')}"
        + (f" (vocab {len(data['vocab'])} tokens)" if data.get("vocab") else "")
    )
    fmt = arch.get("spec_format")
    plugins = info.get("plugins") or {}
    click.echo(
        f"  spec format {fmt}"
        + (" (resolved against the format-1 defaults)" if fmt == 1 else "")
        + f", saved by genlatent {info.get('genlatent_version')}"
        + f" with torch {info.get('torch_version')}"
        + (", plugins: " + ", ".join(f"{k} {v}" for k, v in plugins.items()) if plugins else "")
    )
    if "error" in arch:
        click.echo(f"  architecture: cannot load the model ({arch['error']})")
    counts = arch.get("parameters", {})
    for field in ("encoder", "decoder", "posterior", "prior", "likelihood"):
        entry = spec.get(field)
        if not isinstance(entry, dict) or (counts and field not in counts):
            continue  # an AE records no posterior or prior it uses
        count = f", {counts[field]:,} parameters" if field in counts else ""
        click.echo(f"  {field + ':':<12}{entry.get('name')}{count}")
        click.echo(f"  {'':<14}{_params_line(entry.get('params') or {})}")
    click.echo(f"  {'objective:':<12}{_params_line(spec.get('objective') or {})}")
    if spec.get("condition"):
        from ..conditions import ConditionEncoding
        from ..errors import GenlatentError

        try:
            shown = [c.describe() for c in ConditionEncoding.from_spec(spec["condition"]).columns]
        except GenlatentError as exc:
            shown = [f"unreadable ({exc})"]
        click.echo(f"  {'conditions:':<12}" + "; ".join(shown))
    if "total_parameters" in arch:
        click.echo(f"  {'parameters:':<12}{arch['total_parameters']:,} in all")
    for note in arch.get("notes", []):
        click.echo(f"  note: {note}")
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
