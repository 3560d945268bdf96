"""`priorsep separate` and `priorsep example`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, TextColumn, TimeRemainingColumn

from priorsep.cli.app import (
    DeviceOption,
    QuietOption,
    TerminalProgress,
    app,
    console,
    notice,
    reports_errors,
)
from priorsep.errors import PriorsepError, UsageError

FORMATS = {"int16": ("wav", "PCM_16"), "int24": ("wav", "PCM_24"),
           "float32": ("wav", "FLOAT"), "flac": ("flac", "PCM_24")}


@app.command()
@reports_errors
def separate(
    inputs: Annotated[list[str], typer.Argument(help="Mix files; - reads a wav from stdin.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output folder.")] = None,
    model: Annotated[str, typer.Option(
        "--model", "-m", help="Bundled name, model folder or Hub repo owner/name@revision.")
    ] = "toy",
    steps: Annotated[int | None, typer.Option(
        help="Sampler steps: diffusion steps, or Langevin steps in all (spread over the noise "
             "levels); default: the model's.")
    ] = None,
    chains: Annotated[int | None, typer.Option(help="Chains per segment; the best is kept.")
                      ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed of the sampler.")] = None,
    method: Annotated[str | None, typer.Option(
        help="diffusion (the diffusion sampler, for score priors), langevin (Langevin "
             "posterior sampling), posterior (one pass of the model's amortised encoder) or "
             "posterior+langevin (the encoder starts a short Langevin run: a quarter of the "
             "model's steps unless --steps). Default: the model's own.")] = None,
    samples: Annotated[int, typer.Option(
        help="With the posterior methods: average this many encoder draws (0: its mean).")
    ] = 0,
    float32: Annotated[bool, typer.Option("--float32", help="Write 32-bit float wav.")] = False,
    int24: Annotated[bool, typer.Option("--int24", help="Write 24-bit wav.")] = False,
    flac: Annotated[bool, typer.Option("--flac", help="Write FLAC.")] = False,
    filename: Annotated[str, typer.Option(
        help="Output path template with {track}, {source}, {ext}.")] = "{track}/{source}.{ext}",
    stdout_source: Annotated[str | None, typer.Option(
        "--stdout", help="Write this source as wav to stdout (one input).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace existing output files.")] = False,
    device: DeviceOption = "auto",
    quiet: QuietOption = False,
) -> None:
    """Separate each mix into one file per source: OUT/<track>/<source>.wav."""
    import sys

    from priorsep.api import Separator, output_path
    from priorsep.audio import encode_wav, read_audio, write_audio
    from priorsep.train import resolve_device

    if method == "posterior" and (steps is not None or chains is not None):
        raise UsageError("--steps and --chains apply to the samplers, not to "
                         "--method posterior")
    if steps is not None and steps < 1:
        raise UsageError("--steps must be at least 1")
    if out is None and stdout_source is None:
        raise UsageError("give an output folder with -o OUT, or --stdout SOURCE")
    if stdout_source is not None and len(inputs) != 1:
        raise UsageError("--stdout writes one stem of one input: give exactly one input")
    if sum([float32, int24, flac]) > 1:
        raise UsageError("choose at most one of --float32, --int24, --flac")
    if inputs.count("-") > 1:
        raise UsageError("stdin (-) can be read only once")
    ext, subtype = FORMATS["float32" if float32 else "int24" if int24 else
                           "flac" if flac else "int16"]
    separator = Separator.from_pretrained(model, resolve_device(device), notify=notice,
                                          method=method, samples=samples)
    try:
        separator.configure(steps=steps, seed=seed, n_chains=chains)
    except UsageError as error:
        raise UsageError(f"--steps/--chains/--seed: {error}") from None
    if stdout_source is not None and stdout_source not in separator.sources:
        raise UsageError(f"--stdout {stdout_source}: the model's sources are "
                         f"{', '.join(separator.sources)}")
    failures: list[PriorsepError] = []
    for name in inputs:
        track = "stdin" if name == "-" else Path(name).stem
        try:
            targets = {}
            if out is not None:
                targets = {source: output_path(out, filename, track, source, ext)
                           for source in separator.sources}
                existing = [str(p) for p in targets.values() if p.exists()]
                if existing and not overwrite:
                    raise UsageError(f"{existing[0]} exists (use --overwrite to replace it)")
            audio, rate = read_audio(name)
            if audio.shape[0] > 1 and not quiet:
                console.print(f"note: {name}: {audio.shape[0]} channels averaged to mono",
                              highlight=False)
            with AudioProgress(track, quiet) as progress:
                stems = separator.separate_audio(audio, rate, progress)
            for source, path in targets.items():
                write_audio(path, stems[source], rate, subtype)
            if stdout_source is not None:
                sys.stdout.buffer.write(encode_wav(stems[stdout_source], rate, subtype))
                sys.stdout.buffer.flush()
            if not quiet and targets:
                console.print(f"{name}: wrote {len(targets)} stems under {out}",
                              highlight=False)
        except PriorsepError as error:
            console.print(f"[red]error:[/red] {error}", highlight=False, soft_wrap=True)
            failures.append(error)
    if failures:
        raise typer.Exit(failures[-1].exit_code)


class AudioProgress(TerminalProgress):
    """One progress bar per track, in seconds of audio; hidden off a terminal or with --quiet.

    Entering gives the callback `Separator.separate_audio` reports to, or None when hidden.
    """

    def __init__(self, track: str, quiet: bool) -> None:
        # the total is unknown until the first report, so the seconds are a field, not
        # "{task.total:.1f}" (which cannot format the None a fresh task holds)
        super().__init__(quiet, TextColumn(track), BarColumn(),
                         TextColumn("{task.fields[seconds]}"), TimeRemainingColumn())
        if self.progress is not None:
            self.task = self.progress.add_task(track, total=None, seconds="")

    def __enter__(self):
        if super().__enter__().progress is None:
            return None

        def update(done: float, total: float) -> None:
            self.progress.update(self.task, completed=done, total=total,
                                 seconds=f"{done:.1f}/{total:.1f} s")

        return update


@app.command()
@reports_errors
def example(
    out: Annotated[Path, typer.Argument(help="Where to write the example mix.")] = Path(
        "toy_mix.wav"),
    overwrite: Annotated[bool, typer.Option(help="Replace an existing file.")] = False,
) -> None:
    """Write the bundled example mix (1 s of the toy test split: sine+sawtooth+square+triangle)."""
    import shutil
    from importlib.resources import as_file, files

    if out.exists() and not overwrite:
        raise UsageError(f"{out} exists (use --overwrite to replace it)")
    with as_file(files("priorsep") / "examples" / "toy_mix.wav") as source:
        shutil.copyfile(source, out)
    console.print(f"wrote {out}", highlight=False)
