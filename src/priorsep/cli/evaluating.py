"""`priorsep evaluate`: the experiments as a report, with progress per section."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from priorsep.cli.app import (
    DeviceOption,
    QuietOption,
    SeedOption,
    TerminalProgress,
    app,
    console,
    matrix_view,
    notice,
    reports_errors,
)
from priorsep.config import DEFAULT_MODEL
from priorsep.errors import UsageError


class SectionProgress(TerminalProgress):
    """One progress bar per running evaluation section; hidden off a terminal or with --quiet."""

    def __init__(self, quiet: bool) -> None:
        super().__init__(quiet, TextColumn("{task.description:<10}"), BarColumn(),
                         MofNCompleteColumn(), TimeRemainingColumn())
        self.tasks: dict[str, int] = {}

    def __call__(self, section: str, done: int, total: int) -> None:
        if self.progress is None:
            return
        if section not in self.tasks:
            self.tasks[section] = self.progress.add_task(section, total=total)
        self.progress.update(self.tasks[section], completed=done, total=total)

    def finish(self, section: str) -> None:
        """Remove a finished section's bar (its results are printed next)."""
        if self.progress is not None and section in self.tasks:
            self.progress.remove_task(self.tasks.pop(section))


def _print_section(name: str, section: dict, sources: list[str]) -> None:
    """The terminal's view of a finished section: cross-likelihood tables, separation medians."""
    if "skipped" in section:
        notice(f"{name}: skipped ({section['skipped']})")
    elif name == "cross":
        console.print(matrix_view(
            section["table"], sources,
            f"cross-likelihood, nats/sample, sigma={section['sigma']:g}"))
    elif name == "noise":
        for table in section["cross_likelihood"]:
            console.print(matrix_view(
                table["table"], sources, f"cross-likelihood, nats/sample, data and priors at "
                                         f"sigma={table['sigma']:g}"))
    elif name == "denoising":
        for sigma, table in section["cross_denoising"].items():
            console.print(matrix_view(
                table, sources, f"cross-denoising, Tweedie gain dB, sigma={sigma}"))
    elif name == "separation":
        view = Table(title="SI-SDR, dB: median / mean over the mixes")
        for column in ("source", "separated", "mix (lower)", "oracle (upper)"):
            view.add_column(column, justify="left" if column == "source" else "right")
        scores = section["si_sdr"]

        def decibels(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.2f}"

        for source in [*sources, "all"]:
            view.add_row(source, *[f"{decibels(scores[kind][source]['median'])} / "
                                   f"{decibels(scores[kind][source]['mean'])}"
                                   for kind in ("separated", "mix", "oracle")])
        console.print(view)


@app.command("evaluate")
@reports_errors
def evaluate_command(
    dataset: Annotated[str, typer.Option(
        help="toy (the fixed test split), musdb (ROOT/test/<track>/<stem>.wav), folder "
             "(ROOT/<source>/*.wav solo recordings) or chorales (the test chorales, rendered "
             "on first use).")] = "toy",
    root: Annotated[Path | None, typer.Option(help="Dataset root for musdb and folder.")
                    ] = None,
    model: Annotated[list[str] | None, typer.Option(
        "--model", "-m", help="Model id (bundled name, folder, Hub repo), or a folder of "
                              "sigma-<value>/ models from finetune-noise --sigmas. Repeat to "
                              "compare models side by side (each model's report goes into "
                              "a subfolder). [default: toy with --dataset toy, else "
                              + DEFAULT_MODEL + "]",
        show_default=False)] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Report folder (default: evaluation-<dataset>).")] = None,
    sections: Annotated[str, typer.Option(
        help="Comma-separated subset of cross,noise,constant,gaussian,separation,samples, "
             "or all.")] = "all",
    n_examples: Annotated[int, typer.Option(
        help="Held-out excerpts per source in the likelihood sections.")] = 16,
    length: Annotated[int, typer.Option(help="Samples per likelihood excerpt.")] = 8192,
    sigmas: Annotated[str, typer.Option(
        help="Noise levels of a sigma-conditional model, comma-separated.")
    ] = "0.01,0.027,0.077,0.129,0.359",
    mixes: Annotated[int, typer.Option(help="Held-out mixes to separate.")] = 8,
    mix_seconds: Annotated[float, typer.Option(help="Seconds per separated mix.")] = 0.5,
    steps: Annotated[int, typer.Option(
        help="Langevin steps per mix at most (0: the model's whole schedule).")] = 200,
    sample_seconds: Annotated[float, typer.Option(help="Seconds per sample from the priors.")
                              ] = 3.0,
    audio: Annotated[bool, typer.Option(help="Write the samples as wav files.")] = True,
    json_only: Annotated[bool, typer.Option(
        "--json-only", help="Write report.json only (no Markdown, plots or audio) and print "
                            "it on stdout.")] = False,
    device: DeviceOption = "auto",
    seed: SeedOption = 0,
    quiet: QuietOption = False,
) -> None:
    """Run the thesis' experiments on held-out data: report.json, report.md and plots.

    Sections: cross-likelihood, noise conditioning, constant and random inputs, Gaussian noise
    against its level, separation (SI-SDR / SDR with the mix and oracle anchors) and samples
    from the priors; see docs/evaluate.md. The same seed gives the same report.json.
    """
    import json

    from priorsep.devices import resolve_device
    from priorsep.evaluate import (
        COMPARISON_NAME,
        SECTIONS,
        EvaluationConfig,
        run_evaluation,
        write_comparison,
        write_report,
    )
    from priorsep.evaluation.compare import model_labels

    if steps < 0:
        raise UsageError("--steps must be 0 (the model's whole schedule) or more")
    chosen = SECTIONS if sections.strip() == "all" else tuple(
        name.strip() for name in sections.split(",") if name.strip())
    try:
        try:
            levels = tuple(float(value) for value in sigmas.split(",") if value.strip())
        except ValueError:
            raise UsageError(f"--sigmas {sigmas}: expected comma-separated noise levels, "
                             "e.g. 0.01,0.1") from None
        config = EvaluationConfig(
            dataset=dataset, root=str(root) if root is not None else None,
            sections=chosen, n_examples=n_examples, length=length, sigmas=levels,
            separation_mixes=mixes, separation_seconds=mix_seconds,
            separation_steps=steps or None, sample_seconds=sample_seconds,
            with_audio=audio and not json_only, seed=seed)
    except ValueError as error:
        raise UsageError(str(error)) from None
    out = out if out is not None else Path(f"evaluation-{dataset}")
    models = model or ["toy" if dataset == "toy" else DEFAULT_MODEL]
    labels = model_labels(models)
    evaluations = {}
    for label, model_id in zip(labels, models):
        if len(models) > 1 and not quiet:
            console.print(f"[bold]{model_id}[/bold] (report in {out / label})", highlight=False)
        with SectionProgress(quiet) as progress:
            def on_section(name: str, report: dict) -> None:
                progress.finish(name)
                if not quiet:
                    _print_section(name, report["sections"][name], report["model"]["sources"])

            evaluations[label] = run_evaluation(config, model_id, resolve_device(device),
                                                notify=notice, progress=progress,
                                                on_section=on_section)
    if len(models) == 1:
        written = write_report(evaluations[labels[0]], out, json_only=json_only, notify=notice)
        if json_only:
            print(json.dumps(evaluations[labels[0]].report, indent=2, ensure_ascii=False))
    else:
        written = write_comparison(evaluations, out, json_only=json_only, notify=notice)
        if json_only:  # the file as written
            print((out / COMPARISON_NAME).read_text(encoding="utf-8"), end="")
    if not quiet:
        plots = sum(path.suffix == ".png" for path in written)
        json_name = "report.json" if len(models) == 1 else (
            f"{COMPARISON_NAME} and a report per model")
        console.print(f"wrote {out}: " + (json_name if json_only else
                                          f"{json_name}, report.md, {plots} plot(s)"),
                      highlight=False, soft_wrap=True)
