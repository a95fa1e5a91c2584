"""The HTML of the latent-space report: one page of tables, sentences and embedded PNGs.

Kept apart from :mod:`genlatent.analysis.html_report` (which computes, draws and writes) so
the page's markup can be read and tested on its own numbers.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from typing import Any

HTML_FILE = "report.html"
JSON_FILE = "report.json"

_PICTURES = (
    (
        "latent.png",
        "Latent map",
        "Posterior means of the examined examples (the first two "
        "principal components when the latent space has more than two dimensions).",
    ),
    (
        "reconstructions.png",
        "Reconstructions",
        "Inputs above their reconstructions (decoded posterior means).",
    ),
    (
        "samples.png",
        "Samples from the prior",
        "Decoded draws from the prior: what the model "
        "makes of regions of the latent space chosen by the prior, not by data.",
    ),
    (
        "interpolations.png",
        "Interpolations",
        "Decoded straight paths between the codes of "
        "pairs of examples: a continuous latent space gives gradual changes.",
    ),
    (
        "curves.png",
        "Training curves",
        "Per-epoch metrics from metrics.jsonl; training solid, validation dashed.",
    ),
)


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.6em 0; }
td, th { border: 1px solid #ccc; padding: 0.25em 0.7em; text-align: left; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0; } figcaption { color: #555; font-size: 0.9em; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
.note { color: #555; font-size: 0.9em; }
"""


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool) or isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.{digits - 1}e}"
        return f"{value:.{digits}g}"
    return html.escape(str(value))


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = [
            f'<td class="num">{_fmt(c)}</td>'
            if isinstance(c, (int, float)) or c is None
            else f"<td>{html.escape(str(c))}</td>"
            for c in row
        ]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _figure(pictures: dict[str, tuple[str, str, bytes]], name: str) -> str:
    if name not in pictures:
        return ""
    title, caption, png = pictures[name]
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(title)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _skipped(section: Any) -> str | None:
    if section is None:
        return "not available"
    if isinstance(section, dict) and "skipped" in section:
        return str(section["skipped"])
    return None


def _open_section(parts: list[str], heading: str, section: Any) -> bool:
    """Append the section's heading, and a note when it was skipped; True: fill it in."""
    parts.append(heading)
    why = _skipped(section)
    if why:
        parts.append(f"<p class='note'>Skipped: {html.escape(why)}</p>")
    return not why


def summary_lines(numbers: dict[str, Any]) -> list[str]:
    """One plain sentence per question, for the top of the page."""
    lines = []
    comp = numbers.get("compression")
    if comp and "skipped" not in comp:
        better = comp["model_better_by"]
        lines.append(
            f"Compression: reconstruction error {abs(better):.0%} "
            f"{'below' if better >= 0 else 'above'} PCA with {comp['pca_components']} "
            f"components (PCA fitted on {comp['pca_fit']})."
        )
    cont = numbers.get("continuity")
    if cont and "skipped" not in cont:
        k = str(10 if 10 in cont["k"] else cont["k"][0])
        lines.append(
            f"Continuity: trustworthiness {cont['trustworthiness'][k]:.3f}, continuity "
            f"{cont['continuity'][k]:.3f} over {k} neighbours (1 is perfect, 0.5 random)."
        )
    comp = numbers.get("completeness")
    if comp and "skipped" not in comp:
        trip, agg = comp["round_trip"], comp["aggregate_posterior"]
        kl = agg["gaussian_kl_to_prior"]
        lines.append(
            f"Completeness: re-encoded prior samples lie {trip['ratio']:.2f}x as far from the "
            f"nearest data code as data codes from each other; "
            f"{trip['fraction_beyond_data_95th_percentile']:.0%} beyond the data's 95th "
            f"percentile; aggregate posterior vs prior: KL {_fmt(kl, 3)} nats, MMD² "
            f"{_fmt(agg['mmd2'], 3)} (noise {_fmt(agg['mmd2_prior_vs_prior'], 2)})."
        )
        if "validity" in (comp.get("molecules") or {}):
            lines.append(
                f"Molecules: {comp['molecules']['validity']:.1%} of prior samples are valid SMILES."
            )
    over = numbers.get("overfitting")
    if over:
        tail = (
            "validation still improving at the last epoch"
            if over["val_rise_since_best"] <= 0
            else f"validation up {over['val_rise_since_best']:.3g} nats since its best "
            f"(epoch {over['best_val_epoch']})"
        )
        lines.append(
            f"Overfitting: validation - train {over['metric']} {over['last_gap']:+.3g} nats "
            f"at the last epoch; {tail}."
        )
    units = numbers["active_units"]
    lines.append(f"Active units: {units['count']} of {units['of']}.")
    return lines


def render_html(numbers: dict[str, Any], pictures: dict[str, tuple[str, str, bytes]]) -> str:
    """The report page: sections for each question, pictures as data URIs, no scripts."""
    d, m = numbers["data"], numbers["model"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>genlatent report: {html.escape(str(numbers.get('run', '')))}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Latent-space report: {html.escape(str(numbers.get('run', '')))}</h1>",
        "<p>"
        + html.escape(
            f"A {m['model']} with {m['latent_dim']} latent dimensions "
            f"(prior: {m.get('prior') or 'none'}, likelihood: {m.get('likelihood')}), examined "
            f"on {d['examined']} of the {d['rows']} rows of {d['path']}:{d['key']} "
            f"({d['kind']} {tuple(d['shape'])}), seed {numbers['seed']}."
        )
        + "</p>",
    ]
    parts.append("<h2>Summary</h2><ul>")
    parts.extend(f"<li>{html.escape(line)}</li>" for line in summary_lines(numbers))
    parts.append("</ul>")
    fit = numbers.get("fit") or {}
    if fit:
        parts.append("<h2>Fit</h2>")
        parts.append(_table(["per example (nats)", "value"], [[k, v] for k, v in fit.items()]))

    comp = numbers.get("compression")
    if _open_section(parts, "<h2>Compression: the model against PCA</h2>", comp):
        better = comp["model_better_by"]
        verdict = (
            f"The model's reconstruction error is {abs(better):.1%} "
            f"{'lower' if better >= 0 else 'higher'} than that of PCA with the same "
            f"{comp['pca_components']} dimensions."
        )
        parts.append(f"<p><b>{html.escape(verdict)}</b></p>")
        rows = [
            ["model", comp["model"], comp["model_unexplained_fraction"]],
            [
                f"PCA ({comp['pca_components']} components)",
                comp["pca"],
                comp["pca_unexplained_fraction"],
            ],
        ]
        if comp["pca_in_sample"] != comp["pca"]:
            rows.append(
                [
                    "PCA fitted on the examined rows (in sample)",
                    comp["pca_in_sample"],
                    comp["pca_in_sample"] / comp["total_variance"],
                ]
            )
        rows.append(["the mean alone", comp["total_variance"], 1.0])
        parts.append(_table(["", "squared error per example", "fraction unexplained"], rows))
        parts.append(
            f"<p class='note'>{html.escape(comp['units'])}; PCA fitted on "
            f"{html.escape(comp['pca_fit'])}.</p>"
        )

    cont = numbers.get("continuity")
    if _open_section(parts, "<h2>Continuity: do neighbours stay neighbours?</h2>", cont):
        parts.append(
            _table(
                ["k neighbours", "trustworthiness", "continuity"],
                [
                    [k, cont["trustworthiness"][str(k)], cont["continuity"][str(k)]]
                    for k in cont["k"]
                ],
            )
        )
        parts.append(
            "<p class='note'>Trustworthiness (1 is best) falls when examples that are close in "
            "latent space are far apart in data space; continuity falls when data neighbours "
            "are torn apart in latent space (Venna &amp; Kaski 2001). Random codes score about "
            "0.5.</p>"
        )

    comp = numbers.get("completeness")
    if _open_section(
        parts, "<h2>Completeness: is every region of the prior decoded to data?</h2>", comp
    ):
        trip, agg = comp["round_trip"], comp["aggregate_posterior"]
        parts.append(
            _table(
                ["quantity", "value"],
                [
                    [
                        "median distance, re-encoded prior sample to nearest data code",
                        trip["median_distance_prior"],
                    ],
                    [
                        "median distance, data code to nearest other data code",
                        trip["median_distance_data"],
                    ],
                    ["ratio (1: prior samples land where data sits)", trip["ratio"]],
                    [
                        "fraction of prior samples farther than 95% of data codes",
                        trip["fraction_beyond_data_95th_percentile"],
                    ],
                    [
                        "KL(moment-matched aggregate posterior || prior), nats",
                        agg["gaussian_kl_to_prior"],
                    ],
                    ["MMD² aggregate posterior vs prior", agg["mmd2"]],
                    ["MMD² prior vs prior (noise level)", agg["mmd2_prior_vs_prior"]],
                ],
            )
        )
        mol = comp.get("molecules")
        if mol:
            parts.append(_table(["molecules", "value"], [[k, v] for k, v in mol.items()]))
        parts.append(
            f"<p class='note'>{comp['prior_samples']} codes drawn from the prior are decoded "
            "(likelihood mean) and encoded again. The aggregate posterior is the average of "
            "q(z|x) over the examined data; a large KL or an MMD² well above its noise level "
            "means the prior puts mass where no data is encoded (holes) or misses where it "
            "is.</p>"
        )

    parts.append("<h2>Overfitting: training vs validation</h2>")
    over = numbers.get("overfitting")
    if not over:
        parts.append("<p class='note'>The run logged no validation metrics.</p>")
    else:
        parts.append(
            _table(
                ["epoch", f"train {over['metric']}", f"validation {over['metric']}", "gap"],
                list(zip(over["epochs"], over["train"], over["val"], over["gap"], strict=True)),
            )
        )
        parts.append(
            f"<p>Last gap {_fmt(over['last_gap'])} nats; validation was still at its best "
            f"in the last epoch ({over['best_val_epoch']}).</p>"
            if over["val_rise_since_best"] <= 0
            else f"<p>Last gap {_fmt(over['last_gap'])} nats; validation was best at epoch "
            f"{over['best_val_epoch']} ({_fmt(over['best_val'])}) and has risen by "
            f"{_fmt(over['val_rise_since_best'])} nats since: overfitting.</p>"
        )
        parts.append(
            "<p class='note'>The training value is averaged over each epoch while the weights "
            "change; the validation value is measured at the epoch's end, so early gaps are "
            "biased low.</p>"
        )
        parts.append(_figure(pictures, "overfitting.png"))

    units = numbers["active_units"]
    parts.append("<h2>Active units</h2>")
    parts.append(
        f"<p>{units['count']} of {units['of']} latent dimensions are active (variance of the "
        f"posterior mean across the data above {units['threshold']}; Burda et al. 2016).</p>"
    )
    parts.append(_figure(pictures, "active_units.png"))

    parts.append("<h2>Pictures</h2>")
    for name, _, _ in _PICTURES:
        if name in pictures:
            parts.append(f"<h3>{html.escape(pictures[name][0])}</h3>")
            parts.append(_figure(pictures, name))
    parts.append(
        f"<p class='note'>genlatent {html.escape(str(numbers.get('genlatent_version', '')))}; "
        f"numbers in {JSON_FILE}.</p></body></html>"
    )
    return "\n".join(p for p in parts if p) + "\n"
