"""report.md: the report's tables in Markdown, with its plots where they were drawn.

Reads only the JSON-ready report dict, so report.md and report.json always agree, and the
Markdown can be rebuilt from a report.json alone (`render_markdown(json.load(...))`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from priorsep.evaluation import plots

SECTION_TITLES = {
    "cross": "Cross-likelihood",
    "noise": "Noise conditioning",
    "constant": "Constant and random inputs",
    "gaussian": "Gaussian noise against its level",
    "denoising": "Denoising (Tweedie gain and cross-denoising)",
    "separation": "Separation",
    "samples": "Samples from the priors",
}


def format_number(value: float | None, fmt: str = "+.2f") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return format(value, fmt)


def markdown_table(header: Iterable[str], rows: Iterable[Iterable[str]],
                   right_from: int = 1) -> list[str]:
    header = list(header)
    align = ["---" if i < right_from else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines + [""]


def image_link(name: str, alt: str, files: set[str]) -> list[str]:
    return [f"![{alt}]({name})", ""] if name in files else []


def cross_table(section: dict, sources: list[str]) -> list[str]:
    """Rows: data; columns: prior; each row's highest entry in bold."""
    rows = []
    for source, values in zip(sources, section["table"]):
        finite = [v for v in values if v is not None]
        best = max(finite) if finite else None
        rows.append([source] + [f"**{format_number(v)}**" if v is not None and v == best
                                else format_number(v) for v in values])
    lines = markdown_table(["data \\ prior", *sources], rows)
    wins = sum(section["own_prior_best"])
    lines.append(f"Own prior most likely for {wins} of {len(sources)} sources; smallest "
                 f"diagonal entry minus largest off-diagonal entry: "
                 f"{format_number(section['diagonal_margin'])} nats/sample"
                 + (" (the diagonal beats every off-diagonal entry)."
                    if (section["diagonal_margin"] or -1) > 0 else "."))
    return lines + [""]


def _cross(section: dict, report: dict, files: set[str]) -> list[str]:
    sources = report["model"]["sources"]
    lines = [f"Mean log-likelihood (nats/sample) of each source's held-out data (rows) under "
             f"each prior (columns), prior noise level sigma = {section['sigma']:g}.", ""]
    return lines + cross_table(section, sources) + image_link(plots.CROSS_PLOT, "cross-likelihood",
                                                          files)


def _noise(section: dict, report: dict, files: set[str]) -> list[str]:
    sources = report["model"]["sources"]
    header = ["data sigma \\ prior sigma", *[f"{s:g}" for s in section["prior_sigmas"]]]
    data_labels = [f"{s:g}" for s in section["data_sigmas"]]
    lines = ["Held-out data noised at each sigma (rows; 0 = clean) under the priors of each "
             "noise level (columns), nats/sample. Mean over the sources:", ""]
    lines += markdown_table(header, [[label, *map(format_number, row)]
                             for label, row in zip(data_labels, section["mean_over_sources"])])
    for source in sources:
        lines += [f"{source}:", ""]
        lines += markdown_table(header, [[label, *map(format_number, row)] for label, row
                                 in zip(data_labels, section["by_source"][source])])
    lines += image_link(plots.NOISE_PLOT, "noise conditioning", files)
    lines += ["Cross-likelihood at each noise level (data noised at that level, priors given "
              "it):", ""]
    for table in section["cross_likelihood"]:
        lines += [f"sigma = {table['sigma']:g}:", ""] + cross_table(table, sources)
    return lines + image_link(plots.CROSS_BY_SIGMA_PLOT, "cross-likelihood by noise level", files)


def _constant(section: dict, report: dict, files: set[str]) -> list[str]:
    sources = report["model"]["sources"]
    lines = [f"Each input is {section['length']} samples long (a full receptive field, rounded "
             f"up to the length multiple); N(0, {section['random_input_std']}²) has standard "
             f"deviation {section['random_input_std']}. Log-likelihood under each source's "
             "prior, nats/sample:", ""]
    rows = []
    for name in section["inputs"]:
        for condition, values in zip(section["conditions"], section["log_likelihood"][name]):
            rows.append([name, condition["label"], *map(format_number, values)])
    return lines + markdown_table(["input", "prior", *sources], rows, right_from=2)


def _gaussian(section: dict, report: dict, files: set[str]) -> list[str]:
    sources = report["model"]["sources"]
    lines = [f"Pure Gaussian noise of each standard deviation under each prior (condition "
             f"sigma = {section['sigma']:g}), nats/sample; the last column is what the exact "
             "Gaussian density scores, the first row the prior's own held-out data.", ""]
    rows = [["own data", *[format_number(section["data_log_likelihood"][s]) for s in sources], ""]]
    for index, sigma in enumerate(section["noise_sigmas"]):
        rows.append([f"{sigma:.3g}", *[format_number(section["log_likelihood"][s][index])
                                       for s in sources],
                     format_number(section["gaussian_log_density"][index])])
    lines += markdown_table(["noise std", *sources, "exact Gaussian"], rows)
    beaten = {s: v for s, v in section["noise_beats_data"].items() if v}
    grid = section["noise_sigmas"]
    if beaten:
        lines += ["Noise scores above the prior's own data at: " + "; ".join(
            f"{s}: sigma <= {v[-1]:.3g}" if v == grid[:len(v)]
            else f"{s}: sigma in {{{', '.join(f'{x:.3g}' for x in v)}}}"
            for s, v in beaten.items()) + ".", ""]
    else:
        lines += ["No noise level scores above any prior's own data.", ""]
    return lines + image_link(plots.GAUSSIAN_PLOT, "Gaussian noise against sigma", files)


def _separation(section: dict, report: dict, files: set[str]) -> list[str]:
    sources = report["model"]["sources"]
    settings = section["settings"]
    sampler = settings["sampler"]
    if settings["method"] == "diffusion":
        capped = (f", capped from the model's {settings['model_steps']}"
                  if settings["model_steps"] > sampler["steps"] else "")
        described = (f"diffusion sampler, {sampler['steps']} {sampler['solver']} steps{capped}, "
                     f"sigma {sampler['sigma_max']:g} -> {sampler['sigma_min']:g}, constraint "
                     f"{sampler['constraint']}, churn {sampler['churn']:g}, "
                     f"{sampler['corrector_steps']} correction(s) per step")
    else:
        total = sampler["n_levels"] * sampler["steps_per_level"]
        capped = (f", capped from the model's {settings['model_steps']}"
                  if settings["model_steps"] > total else "")
        described = (f"Langevin {sampler['mode']}, {sampler['n_levels']} levels x "
                     f"{sampler['steps_per_level']} steps{capped}, sigma "
                     f"{sampler['sigma_max']:g} -> {sampler['sigma_min']:g}")
    lines = [
        f"{settings['mixes']} held-out mixes of {settings['seconds']:g} s "
        f"({settings['length']} samples), mixed with the model's mixing ({settings['mixing']}); "
        f"{described}, init {sampler['init']}, {sampler['n_chains']} chain(s), "
        f"seed {sampler['seed']}; segments of {settings['segment_length']} samples, overlap "
        f"{settings['overlap']}. Anchors: *mix* = the mix as every source's estimate (lower), "
        "*oracle* = the true sources through the same overlap-add path (upper). dB, median / "
        "mean over the mixes:", ""]
    for metric, title in (("si_sdr", "SI-SDR"), ("sdr", "SDR")):
        values = section[metric]
        rows = []
        for source in [*sources, "all"]:
            rows.append([source] + [
                f"{format_number(values[name][source]['median'], '.2f')} / "
                f"{format_number(values[name][source]['mean'], '.2f')}"
                for name in ("separated", "mix", "oracle")])
        lines += [f"{title}:", ""]
        lines += markdown_table(["source", "separated", "mix (lower)", "oracle (upper)"], rows)
    if section.get("sisec"):
        window = section["sisec"]["window"]
        lines += [f"SiSEC SDR (museval, BSSEval v4, median over {window}-sample frames, then "
                  "over mixes):", ""]
        lines += markdown_table(["source", "SDR"], [[s, format_number(v, ".2f")] for s, v
                                            in section["sisec"]["median_sdr"].items()])
    elif section.get("sisec_note"):
        lines += [section["sisec_note"] + ".", ""]
    return lines + image_link(plots.SEPARATION_PLOT, "separation", files)


def _samples(section: dict, report: dict, files: set[str]) -> list[str]:
    sources = report["model"]["sources"]
    lines = [f"One {section['seconds']:g} s sample per source and temperature (a flow's inverse, "
             "a score prior's diffusion sampler, or a WaveNet's sample-by-sample generation), at "
             "condition sigma = "
             f"{section['sigma']:g}, all temperatures from the same latent draw. RMS / peak / "
             "share of energy in the 8 strongest bins / log-likelihood under the source's own "
             "prior (nats/sample; n/a for a family without a log-density):", ""]
    rows = []
    for temperature, stats in section["stats"].items():
        rows.append([temperature, *[
            f"{stats[s]['rms']:.3f} / {stats[s]['peak']:.3f} / "
            f"{format_number(stats[s].get('concentration'), '.2f')} / "
            f"{format_number(stats[s]['log_likelihood'])}" + ("" if stats[s]["finite"]
                                                         else " (non-finite values zeroed)")
            for s in sources]])
    lines += markdown_table(["temperature", *sources], rows)
    if section["files"]:
        lines += ["Audio (32-bit float wav): " + ", ".join(
            f"[{name.split('/')[-1]}]({name})" for name in section["files"]) + ".", ""]
    return lines + image_link(plots.SAMPLES_PLOT, "samples", files)


def _denoising(section: dict, report: dict, files: set[str]) -> list[str]:
    sources = report["model"]["sources"]
    lines = ["Tweedie gain of each source's own prior, 10 log10(|noise|^2 / |D(x + noise) - x|^2) "
             "dB (0: no better than the noisy input):", ""]
    lines += markdown_table(["sigma", *sources],
                    [[f"{sigma:g}", *(format_number(v, "+.1f") for v in row)]
                     for sigma, row in zip(section["sigmas"], section["gain_db"])])
    for sigma, table in section["cross_denoising"].items():
        lines += [f"Cross-denoising at sigma = {sigma} (rows: data, columns: prior; gain dB, "
                  "each row's best in bold):", ""]
        rows = []
        for source, values in zip(sources, table):
            best = max(values)
            rows.append([source] + [f"**{format_number(v, '+.1f')}**" if v == best
                                    else format_number(v, "+.1f") for v in values])
        lines += markdown_table(["data \\ prior", *sources], rows)
        margin = section["margin_db"][sigma]
        if margin is not None:
            lines += [f"Smallest lead of a source's own prior over the best other: "
                      f"{format_number(margin, '+.1f')} dB.", ""]
    for sigma, table in section.get("mix_response", {}).items():
        lines += [f"Mix response at sigma = {sigma}: each prior (rows) is given the mix in its "
                  "slot, as the separation sampler starts; gain of each true source (columns) in "
                  "its output. Priors that separate show 1 on the diagonal and 0 elsewhere; "
                  "priors that keep the mix show every source at its mixing weight:", ""]
        lines += markdown_table(["prior \\ source", *sources],
                        [[source, *(format_number(v, ".2f") for v in row)]
                         for source, row in zip(sources, table)])
    return lines + image_link(plots.DENOISING_PLOT, "cross-denoising", files)


RENDERERS = {"cross": _cross, "noise": _noise, "constant": _constant, "gaussian": _gaussian,
             "denoising": _denoising, "separation": _separation, "samples": _samples}


def render_markdown(report: dict, plot_files: Iterable[str] = ()) -> str:
    """The whole report as Markdown; `plot_files` are the PNGs beside it to link."""
    files = set(plot_files)
    model, data, settings = report["model"], report["dataset"], report["settings"]
    field = report["receptive_field"]
    lines = [
        f"# priorsep evaluation: `{model['id']}` on {data['name']}",
        "",
        f"- model: {model['kind']}, sources {', '.join(model['sources'])}, "
        f"{model['sample_rate']} Hz, {model['parameters']:,} parameters, mixing "
        f"{model['mixing']}, trained on sigma in [{model['trained_sigma_range'][0]:g}, "
        f"{model['trained_sigma_range'][1]:g}]"
        + (f"; levels {', '.join(f'{s:g}' for s in model['levels'])}" if model["levels"] else ""),
        *[f"- note: {note}" for note in model["notes"]],
        f"- data: {data['name']}" + (f" ({data['root']})" if data["root"] else "")
        + f", {data['note']}",
        *[f"  - {source['name']}: {source['summary']}"
          for source in data.get("summary", {}).get("sources", [])],
        f"- likelihood sections: {settings['n_examples']} excerpts per source of "
        f"{settings['length']} samples ({settings['length'] / model['sample_rate'] * 1000:g} ms)",
        f"- receptive field of the prior: {field['samples']} samples = {field['ms']:g} ms "
        f"(length multiple {field['length_multiple']})",
        f"- seed {settings['seed']}, device {report['device']}, priorsep "
        f"{report['priorsep_version']}",
        "",
    ]
    for name, section in report["sections"].items():
        lines += [f"## {SECTION_TITLES[name]}", ""]
        if "skipped" in section:
            lines += [f"Skipped: {section['skipped']}.", ""]
            continue
        lines += RENDERERS[name](section, report, files)
    return "\n".join(lines).rstrip() + "\n"
