"""Several models' reports side by side, as the paper compares its WaveNet and FloWaveNet priors.

`comparison` gathers the sections every report holds into one JSON-ready dict (one entry per
model, keyed by its label), `render_comparison` writes it as Markdown and
`write_comparison_plots` draws the figures with one panel (cross-likelihood) or one row (noise
conditioning) per model. Every table and figure names the model it comes from; each model's
full report lies in the folder named by its label.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from priorsep.evaluation import plots
from priorsep.evaluation.markdown import cross_table, format_number, image_link, markdown_table

COMPARISON_FORMAT = 1
CROSS_PLOT = "cross_likelihood_by_model.png"
NOISE_PLOT = "noise_conditioning_by_model.png"


def model_labels(model_ids: list[str]) -> list[str]:
    """A folder-safe label per model id (its last path part), numbered where two agree."""
    bases = [str(model_id).rstrip("/").replace("\\", "/").split("/")[-1].replace(":", "-")
             or "model" for model_id in model_ids]
    return [f"{index + 1}-{base}" if bases.count(base) > 1 else base
            for index, base in enumerate(bases)]


def comparison(reports: dict[str, dict]) -> dict:
    """The side-by-side report of `reports` ({label: a `run_evaluation` report})."""
    first = next(iter(reports.values()))
    models = [{"label": label, "id": report["model"]["id"], "family": report["model"]["family"],
               "kind": report["model"]["kind"], "parameters": report["model"]["parameters"],
               "receptive_field": report["receptive_field"]["samples"],
               "report": f"{label}/report.json"} for label, report in reports.items()]
    sections: dict[str, dict] = {}
    for name in first["sections"]:
        sections[name] = {label: report["sections"][name] for label, report in reports.items()
                          if name in report["sections"]}
    return {"format": "priorsep-comparison", "format_version": COMPARISON_FORMAT,
            "dataset": first["dataset"], "sources": first["model"]["sources"],
            "settings": first["settings"], "models": models,
            "sections": {name: _summary(name, by_model) for name, by_model in sections.items()
                         if name in SUMMARIES}}


def _denoising_summary(section: dict) -> dict:
    return {key: section[key] for key in ("sigmas", "gain_db", "cross_sigmas", "margin_db")}


def _separation_summary(section: dict) -> dict:
    return {"si_sdr": {name: {source: values["mean"] for source, values in by_source.items()}
                       for name, by_source in section["si_sdr"].items()},
            "method": section["settings"]["method"]}


SUMMARIES = {"cross": dict, "noise": dict, "constant": dict, "denoising": _denoising_summary,
             "separation": _separation_summary}
"""What of each section the comparison keeps (likelihood sections whole)."""


def _summary(name: str, by_model: dict[str, dict]) -> dict:
    return {label: section if "skipped" in section else SUMMARIES[name](section)
            for label, section in by_model.items()}


def _heading(model: dict) -> str:
    return f"`{model['label']}` ({model['family']}, {model['kind']})"


def _skipped(section: dict) -> list[str]:
    return [f"Skipped: {section['skipped']}.", ""]


def _cross(by_model: dict, comparison: dict, models: dict, files: set[str]) -> list[str]:
    lines = ["Mean log-likelihood (nats/sample) of each source's held-out data (rows) under "
             "each prior (columns), per model:", ""]
    for label, section in by_model.items():
        lines += [f"{_heading(models[label])}, prior sigma = "
                  f"{section.get('sigma', 0):g}:", ""]
        lines += _skipped(section) if "skipped" in section else cross_table(
            section, comparison["sources"])
    return lines + image_link(CROSS_PLOT, "cross-likelihood, one panel per model", files)


def _noise(by_model: dict, comparison: dict, models: dict, files: set[str]) -> list[str]:
    lines = ["Held-out data noised at each sigma (rows; 0 = clean) under the priors of each "
             "noise level (columns), nats/sample, mean over the sources; one table per model "
             "(the figure: one row per model, one panel per source):", ""]
    for label, section in by_model.items():
        lines += [f"{_heading(models[label])}:", ""]
        if "skipped" in section:
            lines += _skipped(section)
            continue
        header = ["data sigma \\ prior sigma", *[f"{s:g}" for s in section["prior_sigmas"]]]
        lines += markdown_table(header, [[f"{sigma:g}", *map(format_number, row)] for sigma, row in
                                 zip(section["data_sigmas"], section["mean_over_sources"])])
    return lines + image_link(NOISE_PLOT, "noise conditioning, one row per model", files)


def _constant(by_model: dict, comparison: dict, models: dict, files: set[str]) -> list[str]:
    usable = {label: section for label, section in by_model.items() if "skipped" not in section}
    lines = ["Constant 0, constant 1 and N(0, 0.5²) inputs, a receptive field long (each "
             "model's own), under each source's prior: log-likelihood, nats/sample, a column "
             "per model (— where a model has no such condition):", ""]
    for label, section in by_model.items():
        if "skipped" in section:
            lines += [f"{_heading(models[label])}: skipped ({section['skipped']}).", ""]
    if not usable:
        return lines
    rows: dict[tuple[str, str, str], dict[str, float]] = {}
    for label, section in usable.items():
        for name in section["inputs"]:
            for condition, values in zip(section["conditions"], section["log_likelihood"][name]):
                for source, value in zip(comparison["sources"], values):
                    rows.setdefault((name, condition["label"], source), {})[label] = value
    lines += markdown_table(["input", "prior", "source", *[f"`{label}`" for label in usable]],
                    [[*key, *(format_number(values.get(label)) if label in values else "—"
                              for label in usable)] for key, values in rows.items()],
                    right_from=3)
    return lines


def _denoising(by_model: dict, comparison: dict, models: dict, files: set[str]) -> list[str]:
    sources = comparison["sources"]
    lines = ["Tweedie gain (dB) of each source's own prior, a row per model and noise level, "
             "and the smallest lead of a source's own prior over the best other in the "
             "cross-denoising matrix:", ""]
    rows = []
    for label, section in by_model.items():
        for sigma, gains in zip(section["sigmas"], section["gain_db"]):
            margin = section["margin_db"].get(f"{sigma:g}")
            rows.append([f"`{label}`", f"{sigma:g}", *(format_number(v, "+.1f") for v in gains),
                         format_number(margin, "+.1f") if margin is not None else ""])
    return lines + markdown_table(["model", "sigma", *sources, "own-prior lead"], rows,
                                  right_from=2)


def _separation(by_model: dict, comparison: dict, models: dict, files: set[str]) -> list[str]:
    sources = comparison["sources"]
    lines = ["Mean SI-SDR (dB) of the separated sources and of the mix (lower anchor), per "
             "model, on the same held-out mixes:", ""]
    rows = []
    for label, section in by_model.items():
        separated, mix = section["si_sdr"]["separated"], section["si_sdr"]["mix"]
        rows.append([f"`{label}`", section["method"],
                     *(f"{format_number(separated[s], '.2f')} ({format_number(mix[s], '.2f')})"
                       for s in [*sources, "all"])])
    return lines + markdown_table(["model", "method", *sources, "all"], rows, right_from=2)


RENDERERS = {"cross": _cross, "noise": _noise, "constant": _constant, "denoising": _denoising,
             "separation": _separation}
TITLES = {"cross": "Cross-likelihood, per model", "noise": "Noise conditioning, per model",
          "constant": "Constant and random inputs, a column per model",
          "denoising": "Denoising, per model", "separation": "Separation, per model"}


def render_comparison(comparison: dict, plot_files: Iterable[str] = ()) -> str:
    """The comparison as Markdown, linking the plots in `plot_files` and each full report."""
    files = set(plot_files)
    models = {model["label"]: model for model in comparison["models"]}
    lines = [f"# priorsep evaluation: {len(models)} models side by side on "
             f"{comparison['dataset']['name']}", ""]
    for model in comparison["models"]:
        lines.append(f"- {_heading(model)}: model `{model['id']}`, {model['parameters']:,} "
                     f"parameters, receptive field {model['receptive_field']} samples; full "
                     f"report: [{model['label']}/report.md]({model['label']}/report.md)")
    lines.append("")
    for name, by_model in comparison["sections"].items():
        lines += [f"## {TITLES[name]}", ""]
        lines += RENDERERS[name](by_model, comparison, models, files)
    return "\n".join(lines).rstrip() + "\n"


def write_comparison_plots(comparison: dict, out_dir: Path) -> list[str]:
    """The cross-likelihood (a panel per model) and noise-conditioning (a row per model)
    figures; returns the file names written (none without matplotlib or data)."""
    if plots.pyplot() is None:
        return []
    sources = comparison["sources"]
    written = []
    cross = {label: section for label, section in comparison["sections"].get("cross", {}).items()
             if "table" in section}
    if cross:
        panels = [(section["table"], sources, sources, f"{label}: sigma = {section['sigma']:g}",
                   "prior", "data") for label, section in cross.items()]
        plots.heatmap_grid(panels, len(panels), 1.1 * len(sources) + 1.6,
                           "cross-likelihood per model (nats/sample)", out_dir / CROSS_PLOT)
        written.append(CROSS_PLOT)
    noise = {label: section for label, section in comparison["sections"].get("noise", {}).items()
             if "by_source" in section}
    if noise:
        panels = []
        for label, section in noise.items():
            data_labels = [f"{s:g}" for s in section["data_sigmas"]]
            prior_labels = [f"{s:g}" for s in section["prior_sigmas"]]
            panels += [(table, data_labels, prior_labels, f"{label}: {source}", "prior sigma",
                        "data sigma") for source, table in section["by_source"].items()]
        plots.heatmap_grid(panels, len(sources), 0.8 * len(prior_labels) + 2.2,
                           "noise conditioning per model (rows): log-likelihood, nats/sample",
                           out_dir / NOISE_PLOT)
        written.append(NOISE_PLOT)
    return written
