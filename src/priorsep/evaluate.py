"""`priorsep evaluate`: the experiments of the thesis and the BASIS paper as a reproducible report.

Sections (the thesis' experiments), each a JSON-ready dict under `report["sections"]`:
- `cross`: mean log-likelihood of each source's held-out data under each prior (N x N);
- `noise`: data noised at each level under the priors of each level, and the cross-likelihood
  at each level (`priorsep.evaluation.levels` says which levels a model has);
- `constant`: constant 0, constant 1 and N(0, 0.5²) inputs, a receptive field long;
- `gaussian`: pure Gaussian noise of growing level under each prior;
- `denoising` (every family): the Tweedie gain of each source's own prior per noise level and
  the cross-denoising matrices (each source's data denoised by every prior), the score
  analogue of `cross`;
- `separation`: SI-SDR and SDR per source on held-out mixes, with the mix and oracle anchors;
- `samples`: draws from the priors at several temperatures.
The report also gives the prior's exact receptive field. The likelihood sections run for
density families only (FloWaveNet, Gaussian); for a score family they hold a "skipped" note.

`run_evaluation` computes, `write_report` writes `report.json`, `report.md`, PNG plots (when
matplotlib is installed) and the samples as wav. The same configuration and seed give the same
report.json byte for byte: it holds no time, path of a temporary folder or timing (timings go to
`timings.json`). Nothing here prints; notices and progress go to the callbacks.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import priorsep
from priorsep.data.held_out import DATASETS, HeldOutData
from priorsep.evaluation import (
    compare,
    diagnostics,
    likelihood,
    markdown,
    plots,
    samples,
    separation,
)
from priorsep.evaluation.levels import THESIS_SIGMAS, PriorsUnderTest, load_priors_under_test
from priorsep.files import atomic_write_text
from priorsep.separation.mixing import Mixing

SECTIONS: tuple[str, ...] = ("cross", "noise", "constant", "gaussian", "denoising", "separation",
                             "samples")
LIKELIHOOD_SECTIONS = ("cross", "noise", "constant", "gaussian")
"""Sections that need a log-density: skipped, with a note, for score-only families."""
DENOISING_SIGMAS: tuple[float, ...] = (0.03, 0.1, 0.3, 1.0)
CROSS_DENOISING_SIGMAS: tuple[float, ...] = (0.1, 0.3)
REPORT_FORMAT = 1
REPORT_NAME = "report.json"
MARKDOWN_NAME = "report.md"
TIMINGS_NAME = "timings.json"
_SEED_STREAMS = {"excerpts": 1, "noise": 2, "constant": 3, "gaussian": 4, "separation": 5,
                 "samples": 6, "denoising": 7}

Notify = Callable[[str], None]
SectionProgress = Callable[[str, int, int], None]
"""Called with (section, steps done, total steps)."""


@dataclass(frozen=True)
class EvaluationConfig:
    """What `priorsep evaluate` runs; the defaults finish in a few minutes on 2 CPU cores with
    the bundled toy model (the separation section is most of it).

    Attributes:
        dataset: "toy", "musdb", "folder" or "chorales".
        root: dataset root (musdb, folder).
        sections: which of `SECTIONS` to run (always run in that order).
        n_examples: held-out excerpts per source in the likelihood sections.
        length: samples per excerpt (rounded down to the flow's length multiple).
        sigmas: noise levels of a sigma-conditional model (the thesis' five by default).
        noise_examples: draws of each random input (constant and Gaussian sections).
        separation_mixes: held-out mixes separated.
        separation_seconds: length of each of them.
        separation_steps: cap on the Langevin steps per mix (None: the model's schedule).
        sample_seconds: length of each sample from the priors.
        temperatures: temperatures of the samples.
        with_audio: write the samples as wav files.
        seed: seeds every random draw (crops, noise, sampler, samples).
    """

    dataset: str = "toy"
    root: str | os.PathLike | None = None
    sections: tuple[str, ...] = SECTIONS
    n_examples: int = 16
    length: int = 8192
    sigmas: tuple[float, ...] = THESIS_SIGMAS
    noise_examples: int = 4
    separation_mixes: int = 8
    separation_seconds: float = 0.5
    separation_steps: int | None = 200
    sample_seconds: float = 3.0
    temperatures: tuple[float, ...] = samples.TEMPERATURES
    with_audio: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.root is not None:  # a Path is welcome; the report stores text
            object.__setattr__(self, "root", str(self.root))
        for name in ("sections", "sigmas", "temperatures"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; use {', '.join(DATASETS)}")
        unknown = [name for name in self.sections if name not in SECTIONS]
        if unknown or not self.sections:
            raise ValueError(f"unknown section(s) {', '.join(unknown) or '(none given)'}; "
                             f"choose from {', '.join(SECTIONS)}")
        if min(self.n_examples, self.length, self.noise_examples, self.separation_mixes) < 1:
            raise ValueError("n_examples, length, noise_examples and separation_mixes must be "
                             "at least 1")
        if not all(math.isfinite(seconds) and seconds > 0
                   for seconds in (self.separation_seconds, self.sample_seconds)):
            raise ValueError("separation_seconds and sample_seconds (--mix-seconds, "
                             "--sample-seconds) must be finite numbers of seconds above 0")
        if self.separation_steps is not None and self.separation_steps < 1:
            raise ValueError("separation_steps must be at least 1")
        if not self.sigmas or not all(math.isfinite(sigma) and sigma > 0
                                      for sigma in self.sigmas):
            raise ValueError("sigmas (--sigmas) must be one or more finite noise levels above 0")
        if any(t <= 0 for t in self.temperatures) or not self.temperatures:
            raise ValueError("temperatures must be one or more positive numbers")


@dataclass
class Evaluation:
    """A finished evaluation: the report, the samples (for plots and wav files) and timings."""

    report: dict[str, Any]
    drawn: dict[float, torch.Tensor] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def seed_for(seed: int, purpose: str) -> int:
    """An independent seed per purpose, so that running a subset of sections changes no draw."""
    return seed * 100 + _SEED_STREAMS[purpose]


def json_ready(value: Any) -> Any:
    """Round floats to 6 significant digits (non-finite ones become null) and turn tuples
    into lists, recursively."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return float(f"{value:.6g}") if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if isinstance(value, torch.Tensor):
        return json_ready(value.tolist())
    raise TypeError(f"cannot put {type(value).__name__} into a report")


def receptive_field_entry(model: PriorsUnderTest) -> dict[str, Any]:
    """The prior's exact receptive field in samples and ms, and the length multiple."""
    config = model.priors.config
    width = model.priors.receptive_field()
    return {"samples": width, "ms": width / config.sample_rate * 1000,
            "length_multiple": config.length_multiple}


def denoising_section(model: PriorsUnderTest, excerpts: torch.Tensor, seed: int,
                      progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Tweedie gains per noise level and cross-denoising matrices (every family).

    Args:
        excerpts: (n, n_sources, time) held-out sources.

    Returns:
        {"sigmas", "gain_db": rows (sigma) x columns (source), "cross_sigmas",
         "cross_denoising": {sigma: rows (data) x columns (prior)}, "margin_db": {sigma: the
         smallest lead of a source's own prior over the best other}, "mix_response": {sigma:
         rows (prior) x columns (true source), see `diagnostics.mix_response`}}.
    """
    priors = model.priors
    segment = priors.segment_length
    if segment and excerpts.shape[-1] > segment:
        excerpts = excerpts[..., :segment]  # the length the priors were built for
    total = len(DENOISING_SIGMAS) + len(CROSS_DENOISING_SIGMAS)
    gains = []
    for index, sigma in enumerate(DENOISING_SIGMAS):
        gains.append(diagnostics.tweedie_table(priors, excerpts, [sigma], seed)[0]["gain_db"])
        if progress is not None:
            progress(index + 1, total)
    cross, margins, response = {}, {}, {}
    n_sources = len(model.sources)
    mixing = Mixing.from_config(priors.config)
    for index, sigma in enumerate(CROSS_DENOISING_SIGMAS):
        table = diagnostics.cross_denoising(priors, excerpts, sigma, seed)
        cross[f"{sigma:g}"] = table.tolist()
        response[f"{sigma:g}"] = diagnostics.mix_response(priors, excerpts, mixing, sigma,
                                                          seed).tolist()
        margins[f"{sigma:g}"] = (min(float(table[j, j]) - max(float(table[j, k])
                                                              for k in range(n_sources) if k != j)
                                     for j in range(n_sources)) if n_sources > 1 else None)
        if progress is not None:
            progress(len(DENOISING_SIGMAS) + index + 1, total)
    return {"sigmas": list(DENOISING_SIGMAS), "gain_db": gains,
            "cross_sigmas": list(CROSS_DENOISING_SIGMAS), "cross_denoising": cross,
            "margin_db": margins, "mix_response": response}


def run_evaluation(config: EvaluationConfig, model: str = "toy",
                   device: str | torch.device = "cpu", *, notify: Notify | None = None,
                   progress: SectionProgress | None = None,
                   on_section: Callable[[str, dict], None] | None = None) -> Evaluation:
    """Run the sections of `config` on model `model` (any model id, or a per-level folder).

    Args:
        notify: receives one-line notices (levels outside the trained range, museval missing).
        progress: receives (section, done, total) while a section runs.
        on_section: receives (section name, the report so far) as each section finishes; the
            section's dict is `report["sections"][name]`.

    Raises:
        UsageError: the dataset does not hold the model's sources, or an option is unusable.
        DatasetError, AudioReadError: the dataset root is missing or unreadable, or a source
            has no usable audio (unusable files are left out, with a notice each).
    """
    under_test = load_priors_under_test(model, device, config.sigmas, notify)
    model_config = under_test.priors.config
    multiple = model_config.length_multiple
    length = max(config.length // multiple, 1) * multiple
    data = HeldOutData(config.dataset, Path(config.root) if config.root else None,
                       under_test.sources, model_config.sample_rate, notify)
    if notify is not None:
        for problem in data.summary.skipped:
            notify(f"skipped {problem}")
    data.summary.require()
    receptive = receptive_field_entry(under_test)
    settings = dataclasses.asdict(config)
    settings["length"] = length
    report: dict[str, Any] = {
        "format": "priorsep-evaluation",
        "format_version": REPORT_FORMAT,
        "priorsep_version": priorsep.__version__,
        "model": under_test.describe(),
        "dataset": data.describe(),
        "settings": settings,
        "device": torch.device(device).type,
        "receptive_field": receptive,
        "sections": {},
    }
    evaluation = Evaluation(report)

    def section_progress(name: str) -> Callable[[int, int], None] | None:
        if progress is None:
            return None
        return lambda done, total: progress(name, done, total)

    excerpts = None
    if {"cross", "noise", "gaussian", "denoising"} & set(config.sections):
        excerpts = data.excerpts(config.n_examples, length, seed_for(config.seed, "excerpts"))
    for name in SECTIONS:
        if name not in config.sections:
            continue
        started = time.perf_counter()
        step = section_progress(name)
        if name in LIKELIHOOD_SECTIONS and not under_test.priors.has_log_prob:
            section = {"skipped": f"{model_config.family} priors have no log-density "
                                  "(see the denoising section)"}
        elif name == "denoising":
            section = denoising_section(under_test, excerpts, seed_for(config.seed, "denoising"),
                                        step)
        elif name == "cross":
            section = likelihood.cross_section(under_test, excerpts, step)
        elif name == "noise":
            section = (likelihood.noise_section(under_test, excerpts,
                                                seed_for(config.seed, "noise"), step)
                       if under_test.levels else
                       {"skipped": "the model has no noise levels (clean priors)"})
        elif name == "constant":
            constant_length = math.ceil(receptive["samples"] / multiple) * multiple
            section = likelihood.constant_section(under_test, constant_length,
                                                  seed_for(config.seed, "constant"),
                                                  config.noise_examples, step)
        elif name == "gaussian":
            section = likelihood.gaussian_section(under_test, excerpts,
                                                  seed_for(config.seed, "gaussian"),
                                                  config.noise_examples, progress=step)
        elif name == "separation":
            mix_length = max(int(config.separation_seconds * model_config.sample_rate)
                             // multiple, 1) * multiple
            truth = data.excerpts(config.separation_mixes, mix_length,
                                  seed_for(config.seed, "separation"))
            section = separation.separation_section(
                under_test, truth, config.separation_steps, config.seed,
                sisec=config.dataset == "musdb", progress=step, notify=notify)
        else:
            evaluation.drawn = samples.draw_samples(under_test, config.sample_seconds,
                                                    config.temperatures,
                                                    seed_for(config.seed, "samples"), step)
            section = samples.samples_section(under_test, evaluation.drawn, config.with_audio)
        section = json_ready(section)
        report["sections"][name] = section
        evaluation.timings[name] = time.perf_counter() - started
        if on_section is not None:
            on_section(name, report)
    evaluation.report = json_ready(report)
    return evaluation


def write_report(evaluation: Evaluation, out_dir: str | Path, *, json_only: bool = False,
                 notify: Notify | None = None) -> list[Path]:
    """Write report.json and, unless `json_only`, report.md, the PNG plots (when matplotlib is
    installed; otherwise a notice) and the samples' wav files (when the report lists them),
    plus timings.json.

    Returns:
        The files written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = evaluation.report
    written = [out_dir / REPORT_NAME]
    atomic_write_text(written[0], json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    if json_only:
        return written
    plot_files: list[str] = []
    if plots.pyplot() is None:
        if notify is not None:
            notify("matplotlib is not installed (pip install 'priorsep[plot]'): tables only, "
                   "no plots")
    else:
        plot_files = plots.write_plots(report, out_dir, evaluation.drawn)
        written += [out_dir / name for name in plot_files]
    atomic_write_text(out_dir / MARKDOWN_NAME, markdown.render_markdown(report, plot_files))
    written.append(out_dir / MARKDOWN_NAME)
    sampled = report["sections"].get("samples", {})
    if sampled.get("files") and evaluation.drawn:
        written += samples.write_samples(evaluation.drawn, tuple(report["model"]["sources"]),
                                         report["model"]["sample_rate"], out_dir)
    timings = {name: round(seconds, 2) for name, seconds in evaluation.timings.items()}
    timings["total"] = round(sum(evaluation.timings.values()), 2)
    atomic_write_text(out_dir / TIMINGS_NAME, json.dumps(timings, indent=2) + "\n")
    written.append(out_dir / TIMINGS_NAME)
    return written


COMPARISON_NAME = "comparison.json"


def write_comparison(evaluations: dict[str, Evaluation], out_dir: str | Path, *,
                     json_only: bool = False, notify: Notify | None = None) -> list[Path]:
    """Several models' reports side by side: each model's full report in `out_dir/<label>/`
    (`write_report`), and in `out_dir` comparison.json plus (unless `json_only`) report.md
    and the figures with a panel or a row per model (`priorsep.evaluation.compare`).

    Args:
        evaluations: {label: evaluation}, labels from `compare.model_labels`.

    Returns:
        The files written.
    """
    out_dir = Path(out_dir)
    written = []
    for label, evaluation in evaluations.items():
        written += write_report(evaluation, out_dir / label, json_only=json_only, notify=notify)
    side_by_side = compare.comparison({label: evaluation.report
                                       for label, evaluation in evaluations.items()})
    atomic_write_text(out_dir / COMPARISON_NAME,
                      json.dumps(side_by_side, indent=2, ensure_ascii=False) + "\n")
    written.append(out_dir / COMPARISON_NAME)
    if not json_only:
        plot_files = compare.write_comparison_plots(side_by_side, out_dir)
        written += [out_dir / name for name in plot_files]
        atomic_write_text(out_dir / MARKDOWN_NAME,
                          compare.render_comparison(side_by_side, plot_files))
        written.append(out_dir / MARKDOWN_NAME)
    return written


def evaluate(config: EvaluationConfig, model: str = "toy", out_dir: str | Path = "evaluation",
             device: str | torch.device = "cpu", *, json_only: bool = False,
             notify: Notify | None = None, progress: SectionProgress | None = None,
             on_section: Callable[[str, dict], None] | None = None) -> Evaluation:
    """`run_evaluation`, then `write_report` into `out_dir`; see both."""
    evaluation = run_evaluation(config, model, device, notify=notify, progress=progress,
                                on_section=on_section)
    write_report(evaluation, out_dir, json_only=json_only, notify=notify)
    return evaluation
