"""`priorsep render`: MIDI scores to solo recordings per instrument and their mixes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

from priorsep.cli.app import QuietOption, TerminalProgress, app, console, notice, reports_errors
from priorsep.errors import OutputExistsError, UsageError


@app.command()
@reports_errors
def render(
    inputs: Annotated[list[str] | None, typer.Argument(
        help="MIDI files, folders of them (searched at any depth), or corpus:PATTERN for "
             "works of music21's corpus (e.g. corpus:bach/bwv66.6, corpus:bach/bwv2*).",
        show_default=False)] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Folder to write: pieces/<split>/<piece>/<source>.wav + "
                            "mixture.wav, solos/<split>/<source>/<piece>.wav, manifest.json.")
    ] = None,
    instrument: Annotated[list[str] | None, typer.Option(
        "--instrument", "-i", help="NAME=PROGRAM\\[@PART]: a source name, its 0-based General "
                                   "MIDI program (40 violin, 71 clarinet, 66 tenor sax, 70 "
                                   "bassoon; drums, or drums:KIT, for a drum kit) and the part "
                                   "it plays (index from 0, or track name; default: the next "
                                   "part). Repeat, one per part. \\[default: as written: every "
                                   "part with notes on its own program, named after it "
                                   "(violin, acoustic_grand_piano; violin_1, violin_2 for two), "
                                   "channel 10 as drums]",
        show_default=False)] = None,
    sample_rate: Annotated[int, typer.Option(help="Sample rate of the files, Hz.")] = 16000,
    soundfont: Annotated[Path | None, typer.Option(
        help="General MIDI soundfont (.sf2). \\[default: $PRIORSEP_SOUNDFONT, else a system "
             "one such as /usr/share/sounds/sf2/FluidR3_GM.sf2]", show_default=False)] = None,
    split: Annotated[str, typer.Option(
        help="auto (by a hash of the piece name: ~80% train, 10% validation, 10% test), or "
             "train, validation or test for every piece.")] = "auto",
    int16: Annotated[bool, typer.Option(
        "--int16", help="16-bit PCM files (half the size; peaks above 1 clip) instead of "
                        "32-bit float.")] = False,
    tail: Annotated[float, typer.Option(help="Seconds rendered after the last note.")] = 1.0,
    gain: Annotated[float, typer.Option(help="FluidSynth's master gain.")] = 1.0,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace the files of pieces rendered before.")] = False,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Skip the pieces whose files are all there already.")] = False,
    chorales: Annotated[bool, typer.Option(
        "--chorales", help="Render the built-in chorales dataset into the cache (at "
                           "--sample-rate) and print its folder; takes no inputs.")] = False,
    quiet: QuietOption = False,
) -> None:
    """Render MIDI into one solo WAV per instrument and their mix (the mean) per piece: the
    parts as written (their own General MIDI programs, drums on channel 10), or on the
    instruments given with -i.

    Deterministic: the same inputs, settings and soundfont give the same bytes. Every input is
    read and its parts mapped to the instruments before anything is written. Needs FluidSynth
    and a General MIDI soundfont (see the README).
    """
    from priorsep.render import RenderSettings, parse_instrument
    from priorsep.render.inputs import expand
    from priorsep.render.pipeline import render as render_pieces

    if chorales:
        if inputs or instrument or out is not None:
            raise UsageError("--chorales takes no inputs, --instrument or --out (the dataset "
                             "has its own, and lives in the cache)")
        from priorsep.data.chorales import ensure_chorales

        folder = ensure_chorales(sample_rate, notify=None if quiet else notice)
        print(folder)
        return
    if not inputs:
        raise UsageError("no input: give MIDI files, folders or corpus:PATTERN")
    if out is None:
        raise UsageError("--out is needed (the folder to write)")
    chosen = [parse_instrument(text) for text in instrument] if instrument else None
    settings = RenderSettings(sample_rate=sample_rate, soundfont=soundfont,
                              subtype="int16" if int16 else "float32", tail=tail,
                              split=None if split == "auto" else split, gain=gain)
    pieces = expand(inputs)
    with TerminalProgress(quiet, TextColumn("render"), MofNCompleteColumn(), BarColumn(),
                          TextColumn("{task.fields[piece]}"), TimeRemainingColumn()) as view:
        task = (view.progress.add_task("render", total=len(pieces), piece="")
                if view.progress is not None else None)

        def progress(done: int, total: int, name: str) -> None:
            if view.progress is not None:
                view.progress.update(task, completed=done, piece=name)

        try:
            summary = render_pieces(pieces, chosen, out, settings, overwrite=overwrite,
                                    resume=resume, progress=progress)
        except OutputExistsError as error:
            raise UsageError(f"{error}: pass --overwrite to replace it, or --resume to skip "
                             "the pieces already rendered") from None
    if settings.subtype == "int16" and summary.peak > 1.0:
        notice(f"peaks reach {summary.peak:.2f}: clipped in the 16-bit files (lower --gain, "
               "or drop --int16)")
    if not quiet:
        counts = ", ".join(f"{split} {len(names)}" for split, names in summary.pieces.items())
        speed = (f"{summary.audio_seconds / 60:.1f} min of audio in "
                 f"{summary.compute_seconds:.1f} s" if summary.rendered else "nothing new")
        skipped = f", {summary.skipped} skipped (already there)" if summary.skipped else ""
        console.print(f"rendered {summary.rendered} piece(s){skipped} into {out} ({speed}); "
                      f"pieces per split: {counts}", highlight=False, soft_wrap=True)
