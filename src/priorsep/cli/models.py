"""`priorsep cross-likelihood`, `models`, `models download` and `export`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from priorsep.cli.app import (
    DeviceOption,
    QuietOption,
    app,
    console,
    matrix_view,
    notice,
    reports_errors,
)
from priorsep.errors import UsageError


@app.command("cross-likelihood")
@reports_errors
def cross_likelihood_command(
    model: Annotated[str, typer.Argument(help="Model id (bundled name, folder, Hub repo).")],
    n_examples: Annotated[int, typer.Option(help="Held-out toy examples per source.")] = 16,
    length: Annotated[int, typer.Option(help="Samples per example.")] = 4096,
    sigma: Annotated[float, typer.Option(help="Noise level given to the priors.")] = 0.0,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
    device: DeviceOption = "auto",
) -> None:
    """Mean log-likelihood of each toy source's test data under each prior (nats/sample)."""
    import json

    from priorsep.api import load_pretrained
    from priorsep.data.toy import ToyDataset
    from priorsep.devices import resolve_device
    from priorsep.metrics import cross_likelihood

    if n_examples < 1:
        raise UsageError(f"--n-examples {n_examples}: must be at least 1")
    if not (math.isfinite(sigma) and sigma >= 0):
        raise UsageError(f"--sigma {sigma:g}: must be a finite noise level, 0 or more")
    priors, _ = load_pretrained(model, resolve_device(device), notify=notice)
    multiple = priors.config.length_multiple
    if length < multiple:
        raise UsageError(f"--length {length}: must be at least {multiple} samples (the "
                         "model's length multiple)")
    data = ToyDataset("test", n_examples, priors.config.sample_rate)
    sources = data.batch(range(n_examples))[..., : length // multiple * multiple]
    table = cross_likelihood(priors, sources, sigma)
    names = priors.sources
    if json_output:
        rows = {data_name: dict(zip(names, map(float, row)))
                for data_name, row in zip(names, table)}
        print(json.dumps({"sigma": sigma, "log_likelihood": rows}, indent=2))
        return
    Console().print(matrix_view(table.tolist(), names, "log-likelihood, nats/sample (rows: "
                                f"data, columns: prior), sigma={sigma}"))


def _human_size(n_bytes: int) -> str:
    size = float(n_bytes)
    for unit in ("B", "kB", "MB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


models_app = typer.Typer(help="List bundled and cached models (id, revision, sources, sample "
                         "rate, size); `models download ID` fetches one from the Hub.")
app.add_typer(models_app, name="models")


@models_app.callback(invoke_without_command=True)
@reports_errors
def models_command(
    ctx: typer.Context,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """List bundled and cached models: id, revision, prior family, whether an amortised encoder
    comes with it, sources, sample rate, size."""
    if ctx.invoked_subcommand is None:
        show_models(json_output)


def show_models(json_output: bool = False) -> None:
    """The table (or JSON) of `priorsep models`."""
    import json

    from rich.markup import escape

    from priorsep.hub import hub_settings, list_models

    entries = list_models()
    cache = hub_settings(offline=True).cache_dir
    if json_output:
        print(json.dumps({"cache": str(cache), "models": [entry.to_dict() for entry in entries]},
                         indent=2))
        return
    if not entries:
        console.print(f"no models bundled or cached (cache: {cache}); fetch one with "
                      "`priorsep models download OWNER/NAME`", highlight=False, soft_wrap=True)
        return
    view = Table(title=f"models (Hugging Face cache: {cache})")
    for column in ("id", "revision", "family", "encoder", "sources", "sample rate", "size"):
        view.add_column(column, justify="right" if column in ("sample rate", "size") else "left")
    for entry in entries:
        if entry.commit is None:
            revision = entry.kind
        elif entry.revisions:
            revision = f"{', '.join(entry.revisions)} ({entry.commit[:8]})"
        else:
            revision = entry.commit[:12]
        sources = (escape(", ".join(entry.sources)) if entry.problem is None
                   else f"[red]{escape(entry.problem)}[/red]")
        view.add_row(escape(entry.model_id), escape(revision), entry.family or "-",
                     "yes" if entry.encoder else "-", sources,
                     f"{entry.sample_rate} Hz" if entry.sample_rate else "-",
                     _human_size(entry.size_bytes))
    Console().print(view)


@models_app.command("download")
@reports_errors
def models_download_command(
    model: Annotated[str, typer.Argument(
        help="owner/name or owner/name@revision, a comma-separated list of ids, or a bag "
             "file.")],
    revision: Annotated[str | None, typer.Option(help="Branch, tag or commit of owner/name.")
                        ] = None,
    timeout: Annotated[float | None, typer.Option(
        help="Seconds to wait for the Hub (default: HF_HUB_ETAG_TIMEOUT, else 10).")] = None,
    quiet: QuietOption = False,
) -> None:
    """Fetch a model into the Hugging Face cache for later offline use (HF_HUB_OFFLINE=1).

    Prints the model folder(s) on stdout.
    """
    from priorsep.hub import resolve_model

    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise UsageError(f"--timeout {timeout:g}: must be a number of seconds above 0")
    resolved = resolve_model(model, revision=revision, offline=False, timeout=timeout,
                             notify=notice, progress=not quiet and console.is_terminal)
    for folder in dict.fromkeys(resolved.source_folders.values()):
        print(folder)
    if not quiet:
        commit = f" (commit {resolved.commit[:12]})" if resolved.commit else ""
        console.print(f"{resolved.model_id}{commit}: {', '.join(resolved.sources)} at "
                      f"{resolved.config.sample_rate} Hz, available offline", highlight=False,
                      soft_wrap=True)


@app.command("export")
@reports_errors
def export_command(
    model: Annotated[str, typer.Argument(
        help="Model id: bundled name, folder, owner/name@revision, list or bag file.")],
    out: Annotated[Path, typer.Argument(help="Folder to write (new or empty).")],
    license_id: Annotated[str, typer.Option("--license", help="License id for the model card.")
                          ] = "mit",
    datasets: Annotated[list[str] | None, typer.Option(
        "--dataset", help="Hub dataset id the priors were trained on (repeatable).")] = None,
    tags: Annotated[list[str] | None, typer.Option(
        "--tag", help="Extra model-card tag (repeatable).")] = None,
    repo_id: Annotated[str | None, typer.Option(
        help="The Hub repo you will upload to (for the card's usage lines).")] = None,
    force: Annotated[bool, typer.Option(help="Write into a folder that is not empty.")] = False,
    quiet: QuietOption = False,
) -> None:
    """Write a Hub-ready folder: config.json, model.safetensors and a README.md model card.

    Prints the folder on stdout; push it with `hf upload OWNER/NAME DIR .`.
    """
    from priorsep.errors import OutputExistsError, UsageError
    from priorsep.export import export_model

    try:
        folder = export_model(model, out, license=license_id, datasets=datasets or (),
                              tags=tags or (), repo_id=repo_id, force=force, notify=notice)
    except OutputExistsError as error:
        raise UsageError(f"{error}, or pass --force") from None
    print(folder)
    if not quiet:
        console.print(f"wrote {folder}; publish it with: hf upload {repo_id or 'OWNER/NAME'} "
                      f"{folder} .", highlight=False, soft_wrap=True)
