"""`priorsep separate` and `priorsep example`."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, TextColumn, TimeRemainingColumn

from priorsep.cli.app import (
    DeviceOption,
    QuietOption,
    TerminalProgress,
    VerboseOption,
    app,
    console,
    notice,
    reports_errors,
)
from priorsep.config import DEFAULT_MODEL
from priorsep.errors import (
    AudioReadError,
    OutputExistsError,
    PriorsepError,
    UsageError,
)
from priorsep.outputs import DEFAULT_TEMPLATE

if TYPE_CHECKING:
    from priorsep.api import SeparationProgress
    from priorsep.audio import OutputFormat

FORMAT_HELP = "Output format (at most one; default: 16-bit wav)."


@app.command()
@reports_errors
def separate(
    inputs: Annotated[list[str], typer.Argument(
        help="Mix files or folders (their audio files, sorted); - reads stdin.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output folder.")] = None,
    model: Annotated[str, typer.Option(
        "--model", "-m", "-n", help="Bundled name, model folder or Hub repo owner/name@revision.")
    ] = DEFAULT_MODEL,
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
             "model's steps unless --steps), extract (staged extraction by evidence, the "
             "generator priors' method) or wiener (posterior means under the spectral models "
             "of the nmf and vae families). Default: the model's own.")] = None,
    phase: Annotated[str | None, typer.Option(
        help="With --method wiener: the stems' phase, mix (the Wiener share of the mix's "
             "STFT) or misi (magnitudes as the model's settings say, by default the model's "
             "own blended with the share's, and phases made consistent with the mix by "
             "MISI). Default: the model's own.")] = None,
    samples: Annotated[int, typer.Option(
        help="With the posterior methods: average this many encoder draws (0: its mean).")
    ] = 0,
    only: Annotated[str | None, typer.Option(
        "--sources", metavar="A,B",
        help="Separate only these sources (comma-separated): the others are known to be "
             "absent, are never looked for and get no stem.")] = None,
    two_stems: Annotated[str | None, typer.Option(
        "--two-stems", metavar="SOURCE",
        help="Write only SOURCE and no_SOURCE (the sum of the other stems).")] = None,
    mono: Annotated[bool, typer.Option(
        "--mono", help="Average the channels first and write one-channel stems.")] = False,
    start: Annotated[float, typer.Option(
        help="Separate from this second of each input.", min=0.0)] = 0.0,
    duration: Annotated[float | None, typer.Option(
        help="Separate this many seconds (default: to the end).")] = None,
    float32: Annotated[bool, typer.Option("--float32", help="32-bit float wav.")] = False,
    int24: Annotated[bool, typer.Option("--int24", help="24-bit wav (or flac).")] = False,
    flac: Annotated[bool, typer.Option(
        "--flac", help="FLAC, 16-bit (24 with --int24).")] = False,
    mp3: Annotated[bool, typer.Option("--mp3", help="MP3 at --mp3-bitrate.")] = False,
    mp3_bitrate: Annotated[int, typer.Option(
        help="MP3 bit rate in kbps (constant; at most 160 below 32 kHz).")] = 320,
    ogg: Annotated[bool, typer.Option("--ogg", help="Ogg Vorbis.")] = False,
    clip_mode: Annotated[str, typer.Option(
        help="Samples beyond full scale: rescale (the stem by its peak, as Demucs), clamp, or "
             "none (float wav keeps them, other formats saturate).")] = "rescale",
    filename: Annotated[str, typer.Option(
        help="Output path template under OUT with {track}, {trackext}, {source} (or {stem}) "
             "and {ext}.")] = DEFAULT_TEMPLATE,
    stdout_source: Annotated[str | None, typer.Option(
        "--stdout", metavar="SOURCE",
        help="Write this source as wav to stdout (one input; not to a terminal).")] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace existing output files.")] = False,
    segment: Annotated[float | None, typer.Option(
        help="Seconds the model sees at once (default: the model's own segment).")] = None,
    overlap: Annotated[float, typer.Option(
        help="Share of a segment overlapping the next, 0 to 0.5.")] = 0.125,
    batch_size: Annotated[int | None, typer.Option(
        help="Segments separated together (default: the model's, 4; 1 for the spectral "
             "models, whose fit of a segment is large).")] = None,
    jobs: Annotated[int | None, typer.Option(
        "--jobs", "-j", help="CPU threads for torch (default: torch's, one per core). With "
                             "another heavy job on the machine use fewer: 2 threads on 2 cores "
                             "with one busy ran 2.3x slower than 1 (docs/benchmarks.md).")
    ] = None,
    device: DeviceOption = "auto",
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Separate each mix into one file per source: OUT/<track>/<source>.wav.

    Stems keep the input's sample rate and channels. Every output place is checked before
    anything is separated; a track's stems appear together or not at all, and one bad input
    does not stop the others (the exit code is the last failure's).
    """
    import torch

    from priorsep.api import Separator
    from priorsep.audio import OutputFormat
    from priorsep.devices import resolve_device
    from priorsep.outputs import check_template, plan_outputs

    if quiet and verbose:
        raise UsageError("--quiet and --verbose contradict each other")
    if method == "posterior" and (steps is not None or chains is not None):
        raise UsageError("--steps and --chains apply to the samplers, not to "
                         "--method posterior")
    if steps is not None and steps < 1:
        raise UsageError("--steps must be at least 1")
    if chains is not None and chains < 1:
        raise UsageError("--chains must be at least 1")
    if seed is not None and not 0 <= seed < 2**31:
        raise UsageError("--seed must be 0 to 2147483647")
    if not (math.isfinite(start) and start >= 0):
        raise UsageError("--start must be a finite number of seconds, 0 or more")
    if out is None and stdout_source is None:
        raise UsageError("give an output folder with -o OUT, or --stdout SOURCE")
    if stdout_source is not None and len(inputs) != 1:
        raise UsageError("--stdout writes one stem of one input: give exactly one input")
    if stdout_source is not None and sys.stdout.isatty():
        raise UsageError("--stdout writes binary audio: redirect it to a file or a pipe")
    if sum([float32, int24 and not flac, flac, mp3, ogg]) > 1:
        raise UsageError("choose at most one of --float32, --int24, --flac, --mp3, --ogg "
                         "(--int24 --flac is 24-bit FLAC)")
    if inputs.count("-") > 1:
        raise UsageError("stdin (-) can be read only once")
    if duration is not None and not (math.isfinite(duration) and duration > 0):
        raise UsageError("--duration must be a finite number of seconds above 0")
    if segment is not None and not (math.isfinite(segment) and segment > 0):
        raise UsageError("--segment must be a finite number of seconds above 0")
    if not 0 <= overlap <= 0.5:
        raise UsageError("--overlap must be between 0 and 0.5")
    if batch_size is not None and batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    if jobs is not None and jobs < 1:
        raise UsageError("--jobs must be at least 1")
    container = "flac" if flac else "mp3" if mp3 else "ogg" if ogg else "wav"
    depth = "float32" if float32 else "int24" if int24 else "int16"
    try:
        output = OutputFormat(container, depth, mp3_bitrate, clip_mode)
    except UsageError as error:
        raise UsageError(f"output format: {error}") from None
    if out is not None:
        try:
            check_template(filename)
        except UsageError as error:
            raise UsageError(f"--filename: {error}") from None
    names, unreadable = expand_inputs(inputs)
    if jobs is not None:
        torch.set_num_threads(jobs)

    separator = Separator.from_pretrained(model, resolve_device(device), notify=notice,
                                          method=method, samples=samples)
    if phase is not None and separator.method != "wiener":
        raise UsageError(f"--phase applies to the wiener method, not {separator.method}")
    try:
        separator.configure(steps=steps, seed=seed, n_chains=chains, phase=phase)
    except UsageError as error:
        raise UsageError(f"--steps/--chains/--seed/--phase: {error}") from None
    if segment is not None:
        separator.segment_length = max(
            round(segment * separator.sample_rate) // separator.multiple, 1) * separator.multiple
    separator.overlap = min(int(overlap * separator.segment_length),
                            separator.segment_length // 2)
    separator.batch_size = batch_size or separator.batch_size
    if only is not None:
        try:
            separator.only([name.strip() for name in only.split(",") if name.strip()])
        except UsageError as error:
            raise UsageError(f"--sources {only}: {error}") from None
    stem_names = list(separator.stems)
    if two_stems is not None:
        if two_stems not in separator.stems:
            which = "the chosen sources" if only else "the model's sources"
            raise UsageError(f"--two-stems {two_stems}: {which} are "
                             f"{', '.join(separator.stems)}")
        stem_names = [two_stems, f"no_{two_stems}"]
    if stdout_source is not None and stdout_source not in stem_names:
        what = "the stems are" if two_stems else "the model's sources are"
        raise UsageError(f"--stdout {stdout_source}: {what} {', '.join(stem_names)}")
    plan: dict[str, dict[str, Path]] = {}
    if out is not None:
        try:
            plan = plan_outputs(names, out, filename, stem_names, output.ext, overwrite)
        except OutputExistsError as error:
            raise UsageError(f"{error}; use --overwrite to replace") from None
    if verbose:
        console.print(f"model {model}: {', '.join(separator.sources)} at "
                      f"{separator.sample_rate} Hz, method {separator.method}, "
                      f"{separator.evaluations_per_segment} prior evaluations per segment of "
                      f"{separator.segment_length} samples, device {separator.device}, "
                      f"{torch.get_num_threads()} threads", highlight=False)

    failures: list[PriorsepError] = list(unreadable)
    for error in unreadable:
        console.print(f"[red]error:[/red] {error}", highlight=False)
    for name in names:
        began = time.perf_counter()
        try:
            seconds = separate_one(separator, name, Track(
                start, duration, mono, two_stems, plan.get(name, {}), stem_names, output,
                stdout_source, OutputFormat("wav", depth, clip=clip_mode), quiet, model))
            if not quiet and plan:
                console.print(f"{name}: wrote {len(plan[name])} stems under {out}",
                              highlight=False)
            if verbose:
                spent = time.perf_counter() - began
                console.print(f"{name}: {seconds:.1f} s of audio in {spent:.1f} s "
                              f"(real-time factor {spent / max(seconds, 1e-9):.2f})",
                              highlight=False)
        except PriorsepError as error:
            console.print(f"[red]error:[/red] {error}", highlight=False)
            failures.append(error)
    if failures:
        raise typer.Exit(failures[-1].exit_code)


@dataclass(frozen=True)
class Track:
    """What `separate` does with every input: the part to read, the stems to write and how."""

    start: float
    duration: float | None
    mono: bool
    two_stems: str | None
    paths: dict[str, Path]
    stem_names: list[str]
    output: OutputFormat
    stdout_source: str | None
    stdout_format: OutputFormat
    quiet: bool
    model: str


def separate_one(separator, name: str, track: Track) -> float:
    """Read, separate and write one input block by block (`priorsep.streaming`); returns its
    seconds of audio. The stems appear together or not at all."""
    from priorsep.audio import open_audio

    stream = open_audio(name, track.start, track.duration, warn=lambda line: console.print(
        f"[yellow]warning:[/yellow] {line}", highlight=False))
    try:
        return _separate_stream(separator, name, stream, track)
    finally:
        stream.close()


def _separate_stream(separator, name: str, stream, track: Track) -> float:
    import torch

    from priorsep.streaming import MixCorrelation, StemFiles, separate_stream

    channels = 1 if track.mono else stream.channels
    label = Path(name).name if name != "-" else "stdin"
    correlation = MixCorrelation()
    length = 0
    kept = track.stem_names if track.paths else [track.stdout_source]
    with StemFiles(track.paths, kept, stream.rate, channels,
                   track.output) as files, AudioProgress(label, track.quiet) as progress:
        for mix, stems in separate_stream(separator, stream, progress, mono=track.mono):
            if track.two_stems is not None:
                rest = sum((stem for source, stem in stems.items()
                            if source != track.two_stems), torch.zeros_like(mix))
                stems = {track.two_stems: stems[track.two_stems],
                         f"no_{track.two_stems}": rest}
            files.write(stems)
            correlation.add(mix, stems)
            length += mix.shape[-1]
        files.commit()
        if track.stdout_source is not None:
            files.to_stdout(track.stdout_source, track.stdout_format)
    lowest = correlation.lowest()
    if track.two_stems is None and not track.quiet and lowest is not None and lowest > 0.95:
        console.print(f"[yellow]warning:[/yellow] {name}: every stem is a close copy of the mix "
                      f"(correlation {lowest:.2f} or more): model {track.model} did not "
                      "separate it; see docs/benchmarks.md for how well the priors separate",
                      highlight=False)
    return length / stream.rate


def expand_inputs(inputs: list[str]) -> tuple[list[str], list[PriorsepError]]:
    """Folders become the audio files inside them (sorted); a folder without audio is an
    error of its own, reported with the other inputs' failures."""
    from priorsep.audio import audio_files

    names: list[str] = []
    problems: list[PriorsepError] = []
    for name in inputs:
        if name != "-" and Path(name).is_dir():
            found = audio_files(name)
            if not found:
                problems.append(AudioReadError(f"{name}: a folder with no audio files"))
            names.extend(str(path) for path in found)
        else:
            names.append(name)
    return list(dict.fromkeys(names)), problems


class AudioProgress(TerminalProgress):
    """One progress bar per track, in seconds of audio, on a terminal. Off a terminal, plain
    lines: one per tenth of a track of `LONG_TRACK` seconds or more (the line that reports the
    written stems is a short track's one line). Nothing with --quiet.

    Entering gives the callback `Separator.separate_audio` reports to, or None when hidden.
    """

    LONG_TRACK = 30.0

    def __init__(self, track: str, quiet: bool) -> None:
        # the total is unknown until the first report, so the seconds are a field, not
        # "{task.total:.1f}" (which cannot format the None a fresh task holds)
        super().__init__(quiet, TextColumn(track), BarColumn(),
                         TextColumn("{task.fields[seconds]}"), TimeRemainingColumn())
        self.track = track
        self.quiet = quiet
        self.shown = 0
        if self.progress is not None:
            self.task = self.progress.add_task(track, total=None, seconds="")

    def __enter__(self):
        if super().__enter__().progress is None:
            return None if self.quiet else self._lines

        def update(event: SeparationProgress) -> None:
            if event.seconds is None:  # a stream of unknown length: no bar to fill
                return
            total = event.seconds
            done = event.fraction * total
            self.progress.update(self.task, completed=done, total=total,
                                 seconds=f"{done:.1f}/{total:.1f} s")

        return update

    def _lines(self, event: SeparationProgress) -> None:
        total = event.seconds
        if total is None or total < self.LONG_TRACK:
            return
        done = event.fraction * total
        tenth = math.floor(10 * done / total + 1e-9)
        if tenth > self.shown:
            self.shown = tenth
            console.print(f"{self.track}: {10 * tenth}% ({done:.0f}/{total:.0f} s)",
                          highlight=False)


EXAMPLES = {"toy": ("toy_mix.wav", "1 s of the toy test split: sine+sawtooth+square+triangle, "
                                    "for the toy models"),
            "chorale": ("chorale_mix.wav", "10 s of a test-split chorale, BWV 13.6: violin, "
                                           "clarinet, tenor sax and bassoon, for the chorales "
                                           "models")}
"""The bundled example mixes: name -> (file in priorsep/examples, what it is)."""


@app.command()
@reports_errors
def example(
    out: Annotated[Path | None, typer.Argument(
        help="Where to write the example mix (default: toy_mix.wav or chorale_mix.wav).",
        show_default=False)] = None,
    name: Annotated[str, typer.Option(
        "--name", help="Which example: " + "; ".join(f"{key} ({text})" for key, (_, text)
                                                     in EXAMPLES.items()) + ".")] = "chorale",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing file.")] = False,
) -> None:
    """Write a bundled example mix (a chorale for the default model; --name toy: a toy mix)."""
    import shutil
    from importlib.resources import as_file, files

    if name not in EXAMPLES:
        raise UsageError(f"--name {name}: choose {' or '.join(EXAMPLES)}")
    file_name = EXAMPLES[name][0]
    out = Path(file_name) if out is None else out
    if out.exists() and not overwrite:
        raise UsageError(f"{out} exists (use --overwrite to replace it)")
    with as_file(files("priorsep") / "examples" / file_name) as source:
        shutil.copyfile(source, out)
    console.print(f"wrote {out}", highlight=False)
