"""Separating files of any length in bounded memory: read, separate and write block by block.

`audio.open_audio` reads a file (or stdin) in blocks of a few seconds, `StreamResampler` turns
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
import math
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import soundfile
import torch

from priorsep.audio import (
    BLOCK_SECONDS,
    AudioStream,
    OutputFormat,
    file_options,
    limit,
    resample_kernels,
    to_mono,
)
from priorsep.errors import OutputWriteError


class StreamResampler:
    """`audio.resample` of a stream: feed blocks (..., n), get every output sample whose
    kernel has all its input; `finish` gives the rest. Concatenated, the outputs are
    `resample` of the whole signal (the same kernels over the same padded input)."""

    def __init__(self, rate_in: int, rate_out: int) -> None:
        self.same = rate_in == rate_out
        if not self.same:
            self.orig, self.new, self.width, self.kernels = resample_kernels(rate_in, rate_out)
        self.pending: torch.Tensor | None = None
        self.received = self.given = 0

    def feed(self, block: torch.Tensor) -> torch.Tensor:
        if self.same:
            return block
        shape = block.shape
        # float64: the sums then round to the same float32 whatever the blocks (the search
        # behind separation may turn on the last bit of its input)
        flat = block.reshape(math.prod(shape[:-1]), shape[-1]).double()
        if self.pending is None:
            self.pending = flat.new_zeros(flat.shape[0], self.width)  # the left padding
        self.pending = torch.cat([self.pending, flat], dim=-1)
        self.received += shape[-1]
        out = self._convolve().to(block.dtype)
        return out.reshape(*shape[:-1], out.shape[-1])

    def finish(self, like: torch.Tensor) -> torch.Tensor:
        """The last samples; `like` (..., any) gives the leading shape and dtype."""
        if self.same or self.pending is None:
            return like[..., :0]
        self.pending = torch.nn.functional.pad(self.pending, (0, self.width + self.orig))
        out = self._convolve()
        total = math.ceil(self.new * self.received / self.orig)
        out = out[..., :max(0, total - (self.given - out.shape[-1]))].to(like.dtype)
        return out.reshape(*like.shape[:-1], out.shape[-1])

    def _convolve(self) -> torch.Tensor:
        span = 2 * self.width + self.orig
        count = (self.pending.shape[-1] - span) // self.orig + 1
        if count <= 0:
            return self.pending.new_zeros(self.pending.shape[0], 0)
        used = self.pending[:, :(count - 1) * self.orig + span]
        out = torch.nn.functional.conv1d(used[:, None], self.kernels.to(used), stride=self.orig)
        self.pending = self.pending[:, count * self.orig:]
        out = out.transpose(1, 2).reshape(used.shape[0], -1)
        self.given += out.shape[-1]
        return out


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
        chosen = stems[:, keep]
        stems = up.feed(chosen) if not last else torch.cat([up.feed(chosen), up.finish(chosen)],
                                                           dim=-1)
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
