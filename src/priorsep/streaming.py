"""Separating files of any length in bounded memory: read, separate and write block by block.

`open_audio` reads a file (or stdin) in blocks of a few seconds, `audio.StreamResampler` turns
a stream from one sample rate to another with the kernels of `audio.resample`, `separate_stream`
runs a `Separator` over the blocks (`separation.apply.OverlapAdd`: every output sample leaves
as soon as no later segment touches it) and `StemFiles` writes every stem as it comes to a
float32 temporary, then, once the track is whole, encodes each in the output format (the clip
mode's peak is known by then) and renames them into place together. Memory is a few blocks and
one batch of segments, whatever the length; the temporaries take four bytes per sample and
channel of every stem (in `TMPDIR`). stdin is read whole (a pipe cannot be read twice), the
rest of the pipeline streams as for files.
"""

from __future__ import annotations

import io
import itertools
import math
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import torch

from priorsep.audio import (
    FFMPEG_SUFFIXES,
    OutputFormat,
    StreamResampler,
    file_options,
    limit,
    to_mono,
    truncation,
)
from priorsep.errors import AudioReadError, OutputWriteError, UsageError

BLOCK_SECONDS = 4.0
"""Seconds of input read at a time."""


@dataclass
class AudioStream:
    """An input being read: its rate and channels, the frames it should give (None when the
    container does not say; FFmpeg's is an estimate), the blocks (channels, n) float32, and
    `close` to release the file (also when the blocks were never read)."""

    name: str
    rate: int
    channels: int
    frames: int | None
    blocks: Iterator[torch.Tensor]
    close: Callable[[], None] = lambda: None


def open_audio(name: str, start: float = 0.0, duration: float | None = None,
               warn: Callable[[str], None] | None = None) -> AudioStream:
    """Open a file (or `-`, stdin) to read from `start` seconds for `duration` seconds.

    Raises:
        AudioReadError: missing, a folder, unreadable or empty (a block with samples that are
            not finite raises it while reading).
        UsageError: `start` is past the end.
    """
    label = "stdin" if name == "-" else name
    if name == "-":
        payload = sys.stdin.buffer.read()
        if not payload:
            raise AudioReadError("stdin: empty input, expected audio (e.g. a wav file)")
        source: str | io.BytesIO = io.BytesIO(payload)
    else:
        if Path(name).is_dir():
            raise AudioReadError(f"{name}: a folder, not an audio file")
        if not Path(name).is_file():
            raise AudioReadError(f"{name}: no such file")
        source = name
    first_error: Exception | None = None
    if name == "-" or Path(name).suffix.lower() not in FFMPEG_SUFFIXES:
        try:
            file = soundfile.SoundFile(source)
        except (soundfile.LibsndfileError, RuntimeError, OSError) as error:
            first_error = error
            if isinstance(source, io.BytesIO):
                source.seek(0)
        else:
            note = truncation(file.extra_info)
            if note and warn is not None:
                warn(f"{label}: {note}")
            try:
                stream = _cut(label, file.samplerate, file.channels, file.frames, start,
                              duration, lambda first: _soundfile_blocks(file, first, label))
            except (AudioReadError, UsageError):
                file.close()
                raise
            stream.close = file.close
            return stream
    rate, channels, frames, opener, container = _ffmpeg(source, label, first_error)
    try:
        stream = _cut(label, rate, channels, frames, start, duration, opener, estimated=True)
    except (AudioReadError, UsageError):
        container.close()
        raise
    stream.close = container.close
    return stream


def _cut(label: str, rate: int, channels: int, frames: int | None, start: float,
         duration: float | None, opener: Callable[[int], Iterator[np.ndarray]],
         estimated: bool = False) -> AudioStream:
    """The stream from `start` for `duration` seconds (blocks (channels, n) float32);
    `estimated`: `frames` is the container's guess, not checked against `start`."""
    if frames == 0:
        raise AudioReadError(f"{label}: contains no audio")
    first = round(start * rate)
    if frames is not None and not estimated and first >= frames:
        raise UsageError(f"{label}: --start {start:g} s is past its end ({frames / rate:.2f} s)")
    wanted = None if duration is None else max(1, round(duration * rate))
    expected = frames - first if frames is not None else None
    if wanted is not None:
        expected = wanted if expected is None else min(expected, wanted)

    def blocks() -> Iterator[torch.Tensor]:
        given = 0
        for data in opener(first):
            if wanted is not None:
                data = data[:, :wanted - given]
            if data.shape[1] == 0:
                break
            finite = np.isfinite(data).all(axis=0)
            if not finite.all():
                at = (first + given + int(np.argmin(finite))) / rate
                raise AudioReadError(f"{label}: samples that are not finite numbers (NaN or "
                                     f"infinity) from {at:.2f} s; fix or re-export the file")
            given += data.shape[1]
            yield torch.from_numpy(np.ascontiguousarray(data))
            if wanted is not None and given >= wanted:
                break
        if given == 0:
            if (frames is None or estimated) and first > 0:
                raise UsageError(f"{label}: --start {start:g} s is past its end")
            raise AudioReadError(f"{label}: contains no audio")

    return AudioStream(label, rate, channels, expected, blocks())


def _soundfile_blocks(file: soundfile.SoundFile, first: int, label: str
                      ) -> Iterator[np.ndarray]:
    block = max(1, int(BLOCK_SECONDS * file.samplerate))
    try:
        with file:
            if first:
                file.seek(first)
            while True:
                data = file.read(block, dtype="float32", always_2d=True)
                if data.shape[0] == 0:
                    return
                yield data.T
    except (soundfile.LibsndfileError, RuntimeError) as error:
        raise AudioReadError(f"{label}: not a readable audio file ({error})") from None


def _ffmpeg(source: str | io.BytesIO, label: str, first_error: Exception | None):
    """(rate, channels, frames or None, opener, container) of the first audio stream FFmpeg
    decodes."""
    import av

    def refused(reason: str) -> AudioReadError:
        before = f"{first_error}; " if first_error is not None else ""
        return AudioReadError(f"{label}: not a readable audio file ({before}{reason})")

    try:
        container = av.open(source, mode="r")
    except (av.FFmpegError, OSError, ValueError) as error:
        raise refused(f"FFmpeg: {error}") from None
    stream = next((s for s in container.streams if s.type == "audio"), None)
    if stream is None or not stream.codec_context.sample_rate:
        container.close()
        raise refused("no audio stream")
    rate = int(stream.codec_context.sample_rate)
    channels = int(stream.codec_context.channels)
    frames = None
    if stream.duration is not None and stream.time_base is not None:
        frames = max(1, round(float(stream.duration * stream.time_base) * rate))

    def opener(first: int) -> Iterator[np.ndarray]:
        convert = av.AudioResampler(format="fltp", layout=stream.codec_context.layout,
                                    rate=rate)
        skip, pending, held = first, [], 0
        block = max(1, int(BLOCK_SECONDS * rate))
        try:
            with container:
                decoded = (out for frame in container.decode(stream)
                           for out in convert.resample(frame))
                for out in itertools.chain(decoded, convert.resample(None)):
                    data = out.to_ndarray().astype(np.float32, copy=False)
                    if skip:
                        cut = min(skip, data.shape[1])
                        data, skip = data[:, cut:], skip - cut
                    pending.append(data)
                    held += data.shape[1]
                    if held >= block:  # codec frames (~1024 samples) gathered into blocks
                        yield np.concatenate(pending, axis=1)
                        pending, held = [], 0
                if held:
                    yield np.concatenate(pending, axis=1)
        except (av.FFmpegError, OSError, ValueError) as error:
            raise refused(f"FFmpeg: {error}") from None

    return rate, channels, frames, opener, container


class StemFiles:
    """The stems of one track, written as they come and put in place together.

    Args:
        paths: {stem: final path} (may be empty: a stem for stdout only).
        names: the stems to keep (those of `paths` and the one for stdout); `write` drops
            the others.
        rate, channels: of the stems.
        output: the format of the final files.
    """

    def __init__(self, paths: dict[str, Path], names: list[str], rate: int, channels: int,
                 output: OutputFormat) -> None:
        self.paths, self.rate, self.channels, self.output = paths, rate, channels, output
        self.files: dict[str, soundfile.SoundFile] = {}
        self.peaks = dict.fromkeys(names, 0.0)
        try:
            self.folder = Path(tempfile.mkdtemp(prefix="priorsep-stems-"))
        except OSError as error:
            why = error.strerror or error
            raise OutputWriteError(f"no room for the temporary stems ({why}: "
                                   f"{tempfile.gettempdir()}); set TMPDIR elsewhere") from None
        self.parts = {name: self.folder / f"{index}.wav" for index, name in enumerate(names)}
        try:
            for name, path in self.parts.items():
                self.files[name] = soundfile.SoundFile(path, "w", rate, channels,
                                                       subtype="FLOAT", format="WAV")
        except (OSError, RuntimeError, soundfile.LibsndfileError) as error:
            self.close()
            raise OutputWriteError(f"could not open a temporary stem in {self.folder} "
                                   f"({error}); set TMPDIR elsewhere") from None

    def __enter__(self) -> StemFiles:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def write(self, stems: dict[str, torch.Tensor]) -> None:
        """Append (channels, n) to every stem."""
        try:
            for name, stem in stems.items():
                if name in self.files and stem.shape[-1]:
                    self.files[name].write(stem.detach().cpu().float().numpy().T)
                    self.peaks[name] = max(self.peaks[name], float(stem.abs().max()))
        except (OSError, RuntimeError, soundfile.LibsndfileError) as error:
            raise OutputWriteError(f"could not write a temporary stem in {self.folder.parent} "
                                   f"({error}); none of this track was kept") from None

    def commit(self) -> None:
        """Encode every stem of `paths` in the output format and rename them into place
        together (`OutputWriteError` on failure: none of them is left)."""
        from priorsep.files import write_together

        for file in self.files.values():
            file.close()
        try:
            write_together({path: self._encoder(name) for name, path in self.paths.items()})
        except (RuntimeError, ValueError, soundfile.LibsndfileError) as error:
            raise OutputWriteError(f"could not encode the stems: {error}") from None
        except OSError as error:
            raise OutputWriteError(f"could not write the stems ({error.strerror or error}: "
                                   f"{error.filename or ''}); none of this track was kept"
                                   ) from None

    def to_stdout(self, name: str, output: OutputFormat) -> None:
        """Write one stem, encoded, to stdout (after `commit`)."""
        buffer = io.BytesIO()
        buffer.name = f"stem.{output.ext}"
        self._encode(name, buffer, output)
        sys.stdout.buffer.write(buffer.getvalue())
        sys.stdout.buffer.flush()

    def close(self) -> None:
        for file in self.files.values():
            file.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _encoder(self, name: str) -> Callable[[Path], None]:
        return lambda tmp: self._encode(name, tmp, self.output)

    def _encode(self, name: str, target, output: OutputFormat) -> None:
        """Stream one stem from its temporary into `target` (a path or a named file object),
        with the clip mode applied (rescale: by the whole stem's peak)."""
        block = max(1, int(BLOCK_SECONDS * self.rate))
        with soundfile.SoundFile(self.parts[name]) as source, soundfile.SoundFile(
                target, "w", self.rate, self.channels, **file_options(output, self.rate)) as sink:
            for data in source.blocks(block, dtype="float32", always_2d=True):
                sink.write(limit(torch.from_numpy(data), output.clip, self.peaks[name]).numpy())


def separate_stream(separator, stream: AudioStream, progress=None, mono: bool = False
                    ) -> Iterator[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """Separate an `AudioStream` with a `Separator`, block by block.

    Every channel is separated on its own (`mono` averages them first); the mix is resampled
    to the model's rate and the stems back to the input's. Yields (mix, stems): the input
    (channels, n) (averaged with `mono`) and {stem: (channels, n)} over the same samples,
    until the input's length is given out.
    """
    from priorsep.separation.apply import OverlapAdd

    channels = 1 if mono else stream.channels
    model_rate = separator.sample_rate
    frames = stream.frames
    model_frames = None if frames is None else math.ceil(frames * model_rate / stream.rate)
    segment_fn = separator.segment_function(channels, model_frames, progress,
                                            None if frames is None else frames / stream.rate)
    overlap_add = OverlapAdd(segment_fn, separator.segment_length, separator.overlap,
                             separator.multiple, separator.batch_size, rows=channels,
                             total=model_frames)
    down, up = StreamResampler(stream.rate, model_rate), StreamResampler(model_rate, stream.rate)
    names = [name for name in separator.sources if name in separator.stems]
    keep = [separator.sources.index(name) for name in names]
    waiting: list[torch.Tensor] = []  # input not yet matched by output
    given = received = 0

    def pieces(stems: torch.Tensor | None, last: bool = False):
        nonlocal given
        if stems is None:
            return
        stems = up.feed(stems[:, keep]) if not last else torch.cat(
            [up.feed(stems[:, keep]), up.finish(stems[:, keep])], dim=-1)
        if last and given + stems.shape[-1] < received:  # the resampler's rounding
            stems = torch.nn.functional.pad(stems, (0, received - given - stems.shape[-1]))
        stems = stems[..., :received - given]
        mix = torch.cat(waiting, dim=-1) if waiting else stems.new_zeros(channels, 0)
        count = stems.shape[-1]
        waiting[:] = [mix[:, count:]]
        given += count
        if count:
            yield mix[:, :count], {name: stems[:, k] for k, name in enumerate(names)}

    for block in stream.blocks:
        block = to_mono(block) if mono else block
        waiting.append(block)
        received += block.shape[-1]
        yield from pieces(overlap_add.feed(down.feed(block)))
    tail = down.finish(torch.zeros(channels, 0))
    if tail.shape[-1]:
        yield from pieces(overlap_add.feed(tail))
    yield from pieces(overlap_add.finish(), last=True)


class MixCorrelation:
    """Every stem's correlation with the mix, gathered block by block (all above 0.95: the
    priors did not separate the input, and a silent success would mislead)."""

    def __init__(self) -> None:
        self.mix = 0.0
        self.stems: dict[str, list[float]] = {}

    def add(self, mix: torch.Tensor, stems: dict[str, torch.Tensor]) -> None:
        flat = mix.flatten().double()
        self.mix += float(flat @ flat)
        for source, stem in stems.items():
            values = stem.flatten().double().to(flat.device)
            inner, energy = self.stems.setdefault(source, [0.0, 0.0])
            self.stems[source] = [inner + float(values @ flat), energy + float(values @ values)]

    def lowest(self) -> float | None:
        """The lowest correlation of a stem with the mix; None for one stem or a silent mix."""
        if len(self.stems) < 2 or self.mix == 0.0:
            return None
        return min(inner / (energy * self.mix) ** 0.5 if energy else 0.0
                   for inner, energy in self.stems.values())
