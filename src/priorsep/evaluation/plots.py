"""PNG plots of a report, drawn with matplotlib (the optional `plot` extra).

Every function reads the JSON-ready section dicts of `priorsep.evaluate`, so a plot never shows
a figure the tables do not hold. Without matplotlib, `pyplot()` returns None and the report is
tables only.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import torch

CROSS_PLOT = "cross_likelihood.png"
CROSS_BY_SIGMA_PLOT = "cross_likelihood_by_sigma.png"
NOISE_PLOT = "noise_conditioning.png"
GAUSSIAN_PLOT = "gaussian_noise.png"
SEPARATION_PLOT = "separation.png"
DENOISING_PLOT = "cross_denoising.png"
SAMPLES_PLOT = "samples.png"
DPI = 80
"""Small enough that a report's plots stay a few hundred kB (they are kept in docs/)."""
SAMPLE_WINDOW_MS = 40.0
"""The samples plot shows this much of every sample (from its middle), so waveforms are visible."""


def pyplot() -> Any | None:
    """matplotlib.pyplot on the non-interactive Agg backend, or None when not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _save(plt, figure, path: Path) -> None:
    """Save as a palette PNG of at most 128 colours (a third of the size of a full-colour one,
    with no visible difference for these plots); Pillow comes with matplotlib."""
    from PIL import Image

    buffer = io.BytesIO()
    figure.savefig(buffer, dpi=DPI, format="png")
    plt.close(figure)
    buffer.seek(0)
    with Image.open(buffer) as image:
        image.convert("RGB").quantize(colors=128).save(path, optimize=True)


def _heatmap(plt, axis, table: list[list[float]], rows: list[str], columns: list[str],
             title: str, xlabel: str, ylabel: str):
    """A table as coloured cells with its values written in, on a symmetric-log colour scale
    (the entries of a cross-likelihood span +5 to -1000 nats/sample)."""
    from matplotlib.colors import SymLogNorm

    values = torch.tensor([[math.nan if v is None else v for v in row] for row in table])
    finite = values[torch.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.numel() else (-1.0, 1.0)
    if low == high:
        low, high = low - 1, high + 1
    image = axis.imshow(values.numpy(), cmap="viridis",
                        norm=SymLogNorm(linthresh=1.0, vmin=low, vmax=high), aspect="auto")
    for i, row in enumerate(table):
        for j, value in enumerate(row):
            text = "n/a" if value is None or not math.isfinite(value) else f"{value:+.2f}"
            shade = (value - low) / (high - low) if text != "n/a" else 0.0
            axis.text(j, i, text, ha="center", va="center", fontsize=8,
                      color="black" if shade > 0.6 else "white")
    axis.set_xticks(range(len(columns)), columns, rotation=30, ha="right")
    axis.set_yticks(range(len(rows)), rows)
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.set_title(title, fontsize=10)
    return image


def plot_cross(section: dict, sources: list[str], path: Path) -> None:
    """One cross-likelihood heatmap (rows: data, columns: prior)."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(1.2 * len(sources) + 2.5, 1.0 * len(sources) + 1.8))
    image = _heatmap(plt, axis, section["table"], sources, sources,
                     f"log-likelihood, nats/sample (prior sigma = {section['sigma']:g})",
                     "prior", "data")
    figure.colorbar(image, ax=axis, label="nats/sample (symlog)")
    figure.tight_layout()
    _save(plt, figure, path)


def heatmap_grid(panels: list[tuple], columns: int, size: float, title: str,
                 path: Path) -> None:
    """Heatmaps side by side, `columns` per row; each panel is the arguments of `_heatmap`
    after the axis: (table, row labels, column labels, title, x label, y label)."""
    plt = pyplot()
    columns = min(len(panels), columns)
    rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(size * columns + 1, size * rows),
                                squeeze=False)
    for axis, panel in zip(axes.flat, panels):
        _heatmap(plt, axis, *panel)
    for axis in list(axes.flat)[len(panels):]:
        axis.axis("off")
    figure.suptitle(title)
    figure.tight_layout()
    _save(plt, figure, path)


def plot_cross_grid(tables: list[dict], sources: list[str], path: Path) -> None:
    """The cross-likelihood at every noise level, one panel per level (data noised to match)."""
    panels = [(section["table"], sources, sources, f"sigma = {section['sigma']:g}", "prior",
               "data") for section in tables]
    heatmap_grid(panels, 3, 1.1 * len(sources) + 1.6,
                 "cross-likelihood at each noise level (nats/sample)", path)


def plot_cross_denoising(section: dict, sources: list[str], path: Path) -> None:
    """The cross-denoising matrix at each noise level (rows: data, columns: prior; dB)."""
    panels = [(table, sources, sources, f"sigma = {sigma}", "prior", "data")
              for sigma, table in section["cross_denoising"].items()]
    heatmap_grid(panels, 3, 1.1 * len(sources) + 1.6,
                 "cross-denoising: Tweedie gain of each prior on each source's data (dB)", path)


def plot_noise(section: dict, path: Path) -> None:
    """Per source: data noised at each sigma (rows) under the prior of each level (columns)."""
    data_labels = [f"{s:g}" for s in section["data_sigmas"]]
    prior_labels = [f"{s:g}" for s in section["prior_sigmas"]]
    panels = [(table, data_labels, prior_labels, source, "prior sigma", "data noised at sigma")
              for source, table in section["by_source"].items()]
    heatmap_grid(panels, 2, 0.8 * len(prior_labels) + 2.2,
                 "noise conditioning: log-likelihood, nats/sample", path)


def plot_gaussian(section: dict, path: Path) -> None:
    """Pure Gaussian noise against its level, one line per prior, with each prior's own data
    (dashed) and the exact Gaussian density (dotted) for reference."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7, 4.5))
    sigmas = section["noise_sigmas"]
    for index, (source, curve) in enumerate(section["log_likelihood"].items()):
        colour = f"C{index}"
        axis.plot(sigmas, [math.nan if v is None else v for v in curve], "o-", color=colour,
                  label=f"{source} prior")
        own = section["data_log_likelihood"][source]
        if own is not None:
            axis.axhline(own, color=colour, linestyle="--", linewidth=1)
    axis.plot(sigmas, section["gaussian_log_density"], ":", color="black",
              label="exact Gaussian density")
    axis.set_xscale("log")
    axis.set_yscale("symlog", linthresh=10)
    axis.set_xlabel("noise standard deviation")
    axis.set_ylabel("log-likelihood, nats/sample (symlog)")
    axis.set_title("pure Gaussian noise under each prior (dashed: the prior's own data)",
                   fontsize=10)
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    _save(plt, figure, path)


def plot_separation(section: dict, sources: list[str], path: Path) -> None:
    """SI-SDR of every mix and source: the separated estimate against the mix anchor."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(1.6 * len(sources) + 2.5, 4))
    per_mix = section["per_mix"]["si_sdr"]
    width = 0.35
    for offset, (name, colour) in enumerate((("mix", "C7"), ("separated", "C0"))):
        for k in range(len(sources)):
            values = [row[k] for row in per_mix[name]]
            position = k + (offset - 0.5) * width
            axis.boxplot(values, positions=[position], widths=width * 0.9, patch_artist=True,
                         boxprops={"facecolor": colour, "alpha": 0.6},
                         medianprops={"color": "black"}, showfliers=True)
        axis.plot([], [], "s", color=colour, alpha=0.6, label=name)
    axis.set_xticks(range(len(sources)), sources)
    axis.set_ylabel("SI-SDR, dB")
    axis.axhline(0, color="black", linewidth=0.5)
    axis.set_title(f"separation of {section['settings']['mixes']} held-out mixes "
                   f"({section['settings']['seconds']:g} s each)", fontsize=10)
    axis.legend(fontsize=8)
    figure.tight_layout()
    _save(plt, figure, path)


def plot_samples(drawn: dict[float, torch.Tensor], sources: list[str], sample_rate: int,
                 path: Path) -> None:
    """A grid of waveforms: rows are sources, columns temperatures; `SAMPLE_WINDOW_MS` from the
    middle of each sample."""
    plt = pyplot()
    temperatures = list(drawn)
    figure, axes = plt.subplots(len(sources), len(temperatures),
                                figsize=(3.2 * len(temperatures), 1.6 * len(sources)),
                                squeeze=False, sharex=True)
    window = max(int(SAMPLE_WINDOW_MS / 1000 * sample_rate), 1)
    for column, temperature in enumerate(temperatures):
        waves = drawn[temperature]
        start = max(waves.shape[-1] // 2 - window // 2, 0)
        excerpt = waves[:, start:start + window]
        time_ms = torch.arange(excerpt.shape[-1]) / sample_rate * 1000
        for row, source in enumerate(sources):
            axis = axes[row][column]
            axis.plot(time_ms.numpy(), excerpt[row].numpy(), linewidth=0.8)
            if row == 0:
                axis.set_title(f"temperature {temperature:g}", fontsize=10)
            if column == 0:
                axis.set_ylabel(source)
            if row == len(sources) - 1:
                axis.set_xlabel("ms")
    figure.suptitle(f"samples from the priors ({SAMPLE_WINDOW_MS:g} ms from the middle)")
    figure.tight_layout()
    _save(plt, figure, path)


def write_plots(report: dict, out_dir: Path,
                drawn: dict[float, torch.Tensor] | None = None) -> list[str]:
    """Draw every plot the report's sections allow into `out_dir`.

    Returns:
        The PNG file names written (relative to `out_dir`); empty without matplotlib.
    """
    if pyplot() is None:
        return []
    sources = report["model"]["sources"]
    sections = report["sections"]
    written = []

    def draw(name: str, plot, *args) -> None:
        plot(*args, out_dir / name)
        written.append(name)

    if "table" in sections.get("cross", {}):
        draw(CROSS_PLOT, plot_cross, sections["cross"], sources)
    noise = sections.get("noise", {})
    if noise.get("cross_likelihood"):
        draw(CROSS_BY_SIGMA_PLOT, plot_cross_grid, noise["cross_likelihood"], sources)
        draw(NOISE_PLOT, plot_noise, noise)
    if "skipped" not in sections.get("gaussian", {"skipped": True}):
        draw(GAUSSIAN_PLOT, plot_gaussian, sections["gaussian"])
    if "cross_denoising" in sections.get("denoising", {}):
        draw(DENOISING_PLOT, plot_cross_denoising, sections["denoising"], sources)
    if "separation" in sections:
        draw(SEPARATION_PLOT, plot_separation, sections["separation"], sources)
    if drawn:
        draw(SAMPLES_PLOT, plot_samples, drawn, sources, report["model"]["sample_rate"])
    return written
