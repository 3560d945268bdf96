"""Reading, writing, resampling and channel handling of audio files.

Everything else in priorsep sees float32 tensors (channels, time); this module alone talks to
soundfile and PyAV (`open_audio` reads block by block, `read_audio` joins the blocks) and
reads `-` as stdin. What libsndfile reads (wav, flac, ogg,
mp3, aiff) goes through soundfile; anything else FFmpeg decodes (m4a/AAC, Opus, WebM, WMA,
video files' audio) through PyAV, whose wheels carry FFmpeg's libraries (the first audio
stream, every channel, its own sample rate, float32). A file is refused when it holds samples
that are not finite (NaN or infinity); a file whose header promises more audio than it holds
is read as far as it goes, with a warning.
"""

from __future__ import annotations

import io
import itertools
import math
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import torch

from priorsep.errors import AudioReadError, UsageError
from priorsep.files import atomic_write

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
"""What libsndfile reads (training data, datasets, and separation inputs)."""
FFMPEG_SUFFIXES = (".m4a", ".aac", ".mp4", ".opus", ".webm", ".weba", ".wma", ".mka", ".mkv",
                   ".oga", ".caf", ".ac3", ".amr", ".3gp")
"""Further separation inputs, decoded by FFmpeg (a folder given to `separate` lists these too;
any other file is tried by FFmpeg when libsndfile cannot read it)."""
SUBTYPES = {"int16": "PCM_16", "int24": "PCM_24", "float32": "FLOAT"}
CLIP_MODES = ("rescale", "clamp", "none")
_TRUNCATED = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


def read_audio(path: str | os.PathLike,
               warn: Callable[[str], None] | None = None) -> tuple[torch.Tensor, int]:
    """Read a file (or `-` for stdin) whole as (channels, time) float32 and its sample rate:
    the blocks of `open_audio`, joined (`warn` hears of a file shorter than its header says).

    Raises:
        AudioReadError: missing, a folder, unreadable, empty, or with non-finite samples.
    """
    stream = open_audio(str(path), warn=warn)
    try:
        return torch.cat(list(stream.blocks), dim=-1), stream.rate
    finally:
        stream.close()


def truncation(log: str) -> str | None:
    """What libsndfile's log of an opened file says about a data chunk shorter than its
    header promises, or None."""
    found = _TRUNCATED.search(log)
    if found is None or int(found.group(2)) >= int(found.group(1)):
        return None
    return (f"the header promises {int(found.group(1)):,} bytes of audio but the file holds "
            f"{int(found.group(2)):,} (truncated?); separating what is there")


def read_segment(path: str | os.PathLike, start: int, frames: int) -> tuple[torch.Tensor, int]:
    """Read `frames` samples from `start` (in the file's own rate): (channels, frames)."""
    try:
        data, rate = soundfile.read(str(path), start=start, frames=frames, dtype="float32",
                                    always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as error:
        raise AudioReadError(f"{path}: not a readable audio file ({error})") from None
    return torch.from_numpy(np.ascontiguousarray(data.T)), rate


def audio_info(path: str | os.PathLike) -> tuple[int, int]:
    """(number of frames, sample rate) of a file, without reading it."""
    try:
        info = soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError, OSError) as error:
        raise AudioReadError(f"{path}: not a readable audio file ({error})") from None
    return info.frames, info.samplerate


def audio_files(folder: str | os.PathLike) -> list[Path]:
    """The audio files directly inside a folder (by suffix, FFmpeg's too), sorted by name."""
    return sorted(p for p in Path(folder).iterdir()
                  if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES + FFMPEG_SUFFIXES)


def to_mono(audio: torch.Tensor) -> torch.Tensor:
    """(channels, time) -> (1, time) by averaging the channels."""
    return audio.mean(dim=0, keepdim=True)


def resample(audio: torch.Tensor, rate_in: int, rate_out: int,
             lowpass_filter_width: int = 6, rolloff: float = 0.99) -> torch.Tensor:
    """Band-limited resampling along the last axis by a Hann-windowed sinc (polyphase).

    The rates are reduced by their gcd to `rate_in' -> rate_out'`; every output phase has its
    own kernel of the sinc at `rolloff * min(rate_in', rate_out')`, `lowpass_filter_width`
    zero crossings each side; a strided convolution applies them all. Output length:
    ceil(time * rate_out / rate_in). The same kernels as torchaudio's default
    `functional.resample` (sinc_interp_hann), without the dependency.

    Reference: Smith, "Digital Audio Resampling Home Page" (bandlimited interpolation).

    Args:
        audio: (..., time).

    Returns:
        (..., ceil(time * rate_out / rate_in)).
    """
    if rate_in == rate_out:
        return audio
    orig, new, width, kernels = resample_kernels(rate_in, rate_out, lowpass_filter_width,
                                                 rolloff)
    shape, dtype = audio.shape, audio.dtype
    # float64 sums: the same float32 whatever the length (`streaming.StreamResampler`'s too)
    flat = torch.nn.functional.pad(audio.reshape(-1, shape[-1]).double(), (width, width + orig))
    out = torch.nn.functional.conv1d(flat[:, None], kernels, stride=orig)  # (n, new, frames)
    out = out.transpose(1, 2).reshape(flat.shape[0], -1)
    out = out[..., :math.ceil(new * shape[-1] / orig)].to(dtype)
    return out.reshape(*shape[:-1], out.shape[-1])


def resample_kernels(rate_in: int, rate_out: int, lowpass_filter_width: int = 6,
                     rolloff: float = 0.99) -> tuple[int, int, int, torch.Tensor]:
    """(orig, new, width, kernels (new, 1, 2 width + orig) float64) of `resample`: output
    frame f of the input padded by `width` on the left is its samples
    [f orig, f orig + 2 width + orig) times the kernels."""
    gcd = math.gcd(int(rate_in), int(rate_out))
    orig, new = int(rate_in) // gcd, int(rate_out) // gcd
    base = min(orig, new) * rolloff
    width = math.ceil(lowpass_filter_width * orig / base)
    positions = torch.arange(-width, width + orig, dtype=torch.float64)[None, None] / orig
    times = (torch.arange(0, -new, -1, dtype=torch.float64)[:, None, None] / new
             + positions) * base  # (new, 1, 2 width + orig)
    times = times.clamp(-lowpass_filter_width, lowpass_filter_width)
    window = torch.cos(times * math.pi / lowpass_filter_width / 2) ** 2
    times = times * math.pi
    sinc = torch.where(times == 0, torch.ones_like(times), torch.sin(times) / times)
    return orig, new, width, sinc * window * (base / orig)


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
    close: Callable[[], None]


def open_audio(name: str, start: float = 0.0, duration: float | None = None,
               warn: Callable[[str], None] | None = None) -> AudioStream:
    """Open a file (or `-`, stdin) to read from `start` seconds for `duration` seconds.

    Raises:
        AudioReadError: missing, a folder, unreadable or empty (a block with samples that are
            not finite raises it while reading).
        UsageError: `start` is past the end.
    """
    label, source = _source(name)
    first_error: Exception | None = None
    if name == "-" or Path(name).suffix.lower() not in FFMPEG_SUFFIXES:
        try:
            file = soundfile.SoundFile(source)
        except (soundfile.LibsndfileError, RuntimeError, OSError) as error:
            first_error = error
        else:
            note = truncation(file.extra_info)
            if note and warn is not None:
                warn(f"{label}: {note}")

            def fallback(error: Exception, first: int) -> Iterator[np.ndarray]:
                """FFmpeg, for a file libsndfile opens but cannot read."""
                rate, channels, _, opener, _ = _ffmpeg(source, label, error)
                if (rate, channels) != (file.samplerate, file.channels):
                    raise AudioReadError(f"{label}: not a readable audio file ({error})")
                return opener(first)

            return _cut(label, file.samplerate, file.channels, file.frames, start, duration,
                        lambda first: _soundfile_blocks(file, first, label, fallback),
                        file.close)
    rate, channels, frames, opener, container = _ffmpeg(source, label, first_error)
    return _cut(label, rate, channels, frames, start, duration, opener, container.close,
                estimated=True)


def _source(name: str) -> tuple[str, str | io.BytesIO]:
    """(the name errors give, what soundfile and PyAV open): stdin read whole, or a file."""
    if name == "-":
        payload = sys.stdin.buffer.read()
        if not payload:
            raise AudioReadError("stdin: empty input, expected audio (e.g. a wav file)")
        return "stdin", io.BytesIO(payload)
    if Path(name).is_dir():
        raise AudioReadError(f"{name}: a folder, not an audio file")
    if not Path(name).is_file():
        raise AudioReadError(f"{name}: no such file")
    return name, name


def _cut(label: str, rate: int, channels: int, frames: int | None, start: float,
         duration: float | None, opener: Callable[[int], Iterator[np.ndarray]],
         close: Callable[[], None], estimated: bool = False) -> AudioStream:
    """The stream from `start` for `duration` seconds (blocks (channels, n) float32), closed
    by `close` (at once when it is refused); `estimated`: `frames` is the container's guess,
    not checked against `start`."""
    first = round(start * rate)
    if frames == 0 or (frames is not None and not estimated and first >= frames):
        close()
        if frames == 0:
            raise AudioReadError(f"{label}: contains no audio")
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

    return AudioStream(label, rate, channels, expected, blocks(), close)


def _soundfile_blocks(file: soundfile.SoundFile, first: int, label: str,
                      fallback: Callable[[Exception, int], Iterator[np.ndarray]]
                      ) -> Iterator[np.ndarray]:
    """Blocks through libsndfile; if its first read fails, `fallback`'s (FFmpeg's)."""
    block = max(1, int(BLOCK_SECONDS * file.samplerate))
    given = False
    try:
        with file:
            if first:
                file.seek(first)
            while True:
                data = file.read(block, dtype="float32", always_2d=True)
                if data.shape[0] == 0:
                    return
                given = True
                yield data.T
    except (soundfile.LibsndfileError, RuntimeError) as error:
        if given:
            raise AudioReadError(f"{label}: not a readable audio file ({error})") from None
        failure = error
    yield from fallback(failure, first)


def _ffmpeg(source: str | io.BytesIO, label: str, first_error: Exception | None):
    """(rate, channels, frames or None, opener, container) of the first audio stream FFmpeg
    decodes."""
    import av

    def refused(reason: str) -> AudioReadError:
        before = f"{first_error}; " if first_error is not None else ""
        return AudioReadError(f"{label}: not a readable audio file ({before}{reason})")

    if isinstance(source, io.BytesIO):
        source.seek(0)  # libsndfile may have read some of it
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


@dataclass(frozen=True)
class OutputFormat:
    """How stems are encoded.

    container: "wav", "flac", "mp3" or "ogg" (also the file extension).
    depth: "int16", "int24" or "float32" for wav; "int16" or "int24" for flac; ignored by the
        lossy formats.
    bitrate: kbps of mp3 (constant bit rate); clamped to what the MPEG version of the sample
        rate allows (32-320 from 32 kHz, 8-160 from 16 kHz, 8-64 below).
    clip: what happens to samples beyond [-1, 1]: "rescale" divides a stem by its peak
        (x 1.01) when it would clip, as Demucs does; "clamp" cuts them; "none" writes them as
        they are (float wav keeps them, the other formats saturate).
    """

    container: str = "wav"
    depth: str = "int16"
    bitrate: int = 320
    clip: str = "rescale"

    def __post_init__(self) -> None:
        if self.container not in ("wav", "flac", "mp3", "ogg"):
            raise UsageError(f"unknown audio format {self.container!r}")
        if self.depth not in SUBTYPES:
            raise UsageError(f"unknown bit depth {self.depth!r}; choose "
                             f"{', '.join(SUBTYPES)}")
        if self.container == "flac" and self.depth == "float32":
            raise UsageError("FLAC holds integer samples only: choose 16 or 24 bits")
        if self.container in ("mp3", "ogg") and self.depth != "int16":
            raise UsageError(f"{self.container} is lossy: bit depths apply to wav and flac")
        if not 8 <= self.bitrate <= 320:
            raise UsageError(f"mp3 bit rate must be between 8 and 320 kbps, got {self.bitrate}")
        if self.clip not in CLIP_MODES:
            raise UsageError(f"unknown clip mode {self.clip!r}; choose {', '.join(CLIP_MODES)}")

    @property
    def ext(self) -> str:
        return self.container


def mp3_compression(bitrate: int, rate: int) -> float:
    """libsndfile's compression level for a constant mp3 bit rate at a sample rate (its
    encoder maps the level linearly onto the bit rates of the rate's MPEG version)."""
    low, high = (32, 320) if rate >= 32000 else (8, 160) if rate >= 16000 else (8, 64)
    return (high - min(max(bitrate, low), high)) / (high - low)


def limit(audio: torch.Tensor, clip: str, peak: float | None = None) -> torch.Tensor:
    """Apply a clip mode (see `OutputFormat.clip`) to one stem, or to a part of it whose whole
    stem reaches `peak` (default: the part's own peak)."""
    if clip == "rescale":
        if peak is None:
            peak = float(audio.abs().max()) if audio.numel() else 0.0
        return audio / (1.01 * peak) if peak > 1.0 else audio
    if clip == "clamp":
        return audio.clamp(-1.0, 1.0)
    return audio


def file_options(output: OutputFormat, rate: int) -> dict:
    """soundfile's format, subtype and encoder options of `output` at `rate`."""
    if output.container == "mp3":
        return dict(format="MP3", subtype="MPEG_LAYER_III", bitrate_mode="CONSTANT",
                    compression_level=mp3_compression(output.bitrate, rate))
    if output.container == "ogg":
        return dict(format="OGG", subtype="VORBIS")
    return dict(format=output.container.upper(), subtype=SUBTYPES[output.depth])


def encode_audio(audio: torch.Tensor, rate: int, output: OutputFormat | None = None) -> bytes:
    """Encode (channels, time) audio to the bytes of a file in `output`'s format."""
    output = output or OutputFormat()
    data = limit(audio.detach().cpu().float(), output.clip).numpy().T
    buffer = io.BytesIO()
    buffer.name = f"stem.{output.ext}"  # libsndfile's mp3 writer wants a named file
    soundfile.write(buffer, data, rate, **file_options(output, rate))
    return buffer.getvalue()


def write_audio(path: str | os.PathLike, audio: torch.Tensor, rate: int,
                depth: str = "int16") -> None:
    """Write (channels, time) audio atomically (temp file, then rename): flac for a .flac
    suffix (float becomes 24 bits), wav otherwise; integer samples are clamped."""
    path = Path(path)
    flac = path.suffix.lower() == ".flac"
    output = OutputFormat("flac" if flac else "wav",
                          "int24" if flac and depth == "float32" else depth, clip="clamp")
    payload = encode_audio(audio, rate, output)
    atomic_write(path, lambda tmp: tmp.write_bytes(payload))
