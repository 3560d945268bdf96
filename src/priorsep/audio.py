"""Reading, writing, resampling and channel handling of audio files.

Everything else in priorsep sees float32 tensors (channels, time); this module alone talks to
soundfile and PyAV and reads `-` as stdin. What libsndfile reads (wav, flac, ogg, mp3, aiff)
goes through soundfile; anything else FFmpeg decodes (m4a/AAC, Opus, WebM, WMA, video files'
audio) through PyAV, whose wheels carry FFmpeg's libraries (`decode_with_ffmpeg`: the first
audio stream, every channel, its own sample rate, float32). A file is refused when it holds
samples that are not finite (NaN or infinity); a file whose header promises more audio than it
holds is read as far as it goes, with a warning.
"""

from __future__ import annotations

import io
import math
import os
import re
import sys
from collections.abc import Callable
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
    """Read a file (or `-` for stdin) as (channels, time) float32 and its sample rate.

    Args:
        warn: receives a line when the file holds less audio than its header promises.

    Raises:
        AudioReadError: missing, a folder, unreadable, empty, or with non-finite samples.
    """
    name = "stdin" if str(path) == "-" else str(path)
    try:
        if str(path) == "-":
            payload = sys.stdin.buffer.read()
            if not payload:
                raise AudioReadError("stdin: empty input, expected audio (e.g. a wav file)")
            try:
                data, rate = soundfile.read(io.BytesIO(payload), dtype="float32",
                                            always_2d=True)
            except (soundfile.LibsndfileError, RuntimeError) as error:
                data, rate = decode_with_ffmpeg(io.BytesIO(payload), name, error)
        else:
            if Path(path).is_dir():
                raise AudioReadError(f"{path}: a folder, not an audio file")
            if not Path(path).is_file():
                raise AudioReadError(f"{path}: no such file")
            if Path(path).suffix.lower() in FFMPEG_SUFFIXES:
                data, rate = decode_with_ffmpeg(str(path), name)
            else:
                try:
                    with soundfile.SoundFile(str(path)) as file:
                        data = file.read(dtype="float32", always_2d=True)
                        rate, log = file.samplerate, file.extra_info
                except (soundfile.LibsndfileError, RuntimeError) as error:
                    data, rate, log = *decode_with_ffmpeg(str(path), name, error), ""
                truncated = truncation(log)
                if truncated and warn is not None:
                    warn(f"{path}: {truncated}")
    except AudioReadError:
        raise
    except (soundfile.LibsndfileError, RuntimeError, OSError, ValueError) as error:
        raise AudioReadError(f"{name}: not a readable audio file ({error})") from None
    if data.shape[0] == 0:
        raise AudioReadError(f"{name}: contains no audio")
    bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
    if bad:
        raise AudioReadError(f"{name}: {bad} sample(s) are not finite numbers (NaN or "
                             "infinity); fix or re-export the file")
    return torch.from_numpy(np.ascontiguousarray(data.T)), rate


def decode_with_ffmpeg(source: str | io.BytesIO, name: str,
                       first_error: Exception | None = None) -> tuple[np.ndarray, int]:
    """The first audio stream of a file FFmpeg decodes, as (frames, channels) float32 and its
    sample rate.

    Raises:
        AudioReadError: FFmpeg cannot open or decode it, or it holds no audio stream (the
            message gives libsndfile's reason too when it was tried first).
    """
    import av

    def refused(reason: str) -> AudioReadError:
        before = f"{first_error}; " if first_error is not None else ""
        return AudioReadError(f"{name}: not a readable audio file ({before}{reason})")

    try:
        with av.open(source, mode="r") as container:
            stream = next((s for s in container.streams if s.type == "audio"), None)
            if stream is None:
                raise refused("no audio stream")
            rate = stream.codec_context.sample_rate
            # planar float32 at the stream's own rate and layout: (channels, samples) a frame
            convert = av.AudioResampler(format="fltp", layout=stream.codec_context.layout,
                                        rate=rate)
            blocks = [out.to_ndarray() for frame in container.decode(stream)
                      for out in convert.resample(frame)]
            blocks += [out.to_ndarray() for out in convert.resample(None)]
    except AudioReadError:
        raise
    except (av.FFmpegError, OSError, ValueError, StopIteration) as error:
        raise refused(f"FFmpeg: {error}") from None
    if not blocks or not rate:
        raise AudioReadError(f"{name}: contains no audio")
    return np.ascontiguousarray(np.concatenate(blocks, axis=1).T, dtype=np.float32), int(rate)


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
        if self.same:
            return like[..., :0]
        if self.pending is None:
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
