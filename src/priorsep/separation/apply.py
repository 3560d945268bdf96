"""Long audio in fixed segments with overlap-add: the one place that chunks and pads.

A mix of any length is cut into segments of `segment_length` samples that overlap by `overlap`
samples (hop = segment_length - overlap); the last one ends where the audio ends. A model only
ever sees whole segments. The estimates are cross-faded back with a window whose overlapping
copies sum to one (a flat top with sin**2 / cos**2 ramps of `overlap` samples; with 50 % overlap
it is a Hann window) and divided by the summed window, so a segment function that returns its
input rebuilds the input exactly, also where only one segment covers a sample (the two ends).
An input shorter than one segment is one segment of its own length, padded to a multiple of
`multiple` (a flow with k squeezes needs multiples of 2**k).

Segments go to the model `batch_size` at a time. `OverlapAdd` takes the mix block by block and
gives back every output sample as soon as no later segment can touch it (about a segment
behind the input), so a stream of any length separates in the memory of one batch;
`separate_long` feeds it a whole mix at once.

Reference: the scheme of demucs `apply.py` (Défossez et al.), with a constant-sum window.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

SegmentFn = Callable[[torch.Tensor], torch.Tensor]
"""Separates segments: (n, segment_length) -> (n, n_sources, segment_length)."""


def crossfade_window(segment_length: int, overlap: int, dtype: torch.dtype = torch.float32,
                     device: torch.device | str | None = None) -> torch.Tensor:
    """Flat-top window whose copies every `segment_length - overlap` samples sum to one.

    The first `overlap` samples rise as sin**2(pi/2 (i + 1/2) / overlap), the last `overlap`
    fall as the matching cos**2, so the rise of one segment and the fall of the previous sum to
    one; every value is strictly positive. Needs 0 <= overlap <= segment_length / 2.

    Returns:
        (segment_length,).
    """
    if not 0 <= 2 * overlap <= segment_length:
        raise ValueError(f"overlap must be between 0 and segment_length / 2, got {overlap}")
    window = torch.ones(segment_length, dtype=torch.float64)
    if overlap:
        phase = (torch.arange(overlap, dtype=torch.float64) + 0.5) / overlap * (math.pi / 2)
        window[:overlap] = torch.sin(phase).pow(2)
        window[segment_length - overlap:] = torch.cos(phase).pow(2)
    return window.to(dtype=dtype, device=device)


def segment_starts(time: int, segment_length: int, overlap: int) -> list[int]:
    """Start of every segment covering `time` samples: every `segment_length - overlap`
    samples, and the last one ending where the audio ends (it overlaps its neighbour by more
    than `overlap` rather than holding padding: a model never sees silence that is not in the
    audio)."""
    if time <= segment_length:
        return [0]
    hop = segment_length - overlap
    count = 1 + math.ceil((time - segment_length) / hop)
    return [index * hop for index in range(count - 1)] + [time - segment_length]


def _check(segment_length: int, overlap: int, multiple: int, batch_size: int) -> None:
    if multiple < 1 or batch_size < 1:
        raise ValueError("multiple and batch_size must be at least 1")
    if segment_length < 1 or segment_length % multiple:
        raise ValueError(f"segment_length {segment_length} must be a positive multiple of "
                         f"{multiple}")
    if not 0 <= 2 * overlap <= segment_length:
        raise ValueError(f"overlap must be between 0 and segment_length / 2, got {overlap}")


class OverlapAdd:
    """Separate a mix that arrives in blocks, with the segments of `separate_long`.

    `feed(block)` takes the next samples of every row and returns the output samples that are
    finished (no later segment overlaps them); `finish()` separates what is left, with the
    last segment ending where the mix ends, and returns the rest. Concatenated, the pieces are
    `separate_long` of the whole mix. Memory: about one segment and one batch of the mix and
    of the output, whatever the length.

    Args:
        segment_fn, segment_length, overlap, multiple, batch_size: as for `separate_long`.
        rows: mixes separated side by side (the channels of a stereo file).
        total: the mix's length when known (for progress: the number of segments).
        progress: called with (segments done, total segments, as far as known).
    """

    def __init__(self, segment_fn: SegmentFn, segment_length: int, overlap: int,
                 multiple: int = 1, batch_size: int = 8, rows: int = 1,
                 total: int | None = None,
                 progress: Callable[[int, int], None] | None = None) -> None:
        _check(segment_length, overlap, multiple, batch_size)
        self.segment_fn, self.length, self.overlap = segment_fn, segment_length, overlap
        self.hop, self.multiple, self.batch_size, self.rows = (
            segment_length - overlap, multiple, batch_size, rows)
        self.progress = progress
        self.total_jobs = rows * len(segment_starts(total, segment_length, overlap)) if total \
            else 0
        self.done_jobs = 0
        self.window = crossfade_window(segment_length, overlap)
        self.buffer = torch.zeros(rows, 0)  # the mix from sample `self.base` on
        self.base = self.received = self.next_start = 0
        self.jobs: list[tuple[int, int]] = []  # (row, start) known to come, not yet separated
        self.output: torch.Tensor | None = None  # from sample `self.out_base` on
        self.weight = torch.zeros(0, dtype=torch.float64)
        self.out_base = 0

    def feed(self, block: torch.Tensor) -> torch.Tensor | None:
        """Take (rows, n) more samples; return the finished output (rows, n_sources, m), or
        None before the first segment is done."""
        if block.dim() != 2 or block.shape[0] != self.rows:
            raise ValueError(f"blocks must be (rows={self.rows}, time), got {tuple(block.shape)}")
        self.buffer = torch.cat([self.buffer.to(block), block], dim=-1)
        self.received += block.shape[-1]
        while self.next_start + self.length < self.received:  # not the last segment
            self.jobs += [(row, self.next_start) for row in range(self.rows)]
            self.next_start += self.hop
        while len(self.jobs) >= self.batch_size:
            self._separate(self.batch_size)
        # a later segment starts at a queued job, the next regular start or, the last one,
        # one segment before the end (which is at least where the mix has got to)
        settled = min([self.next_start, self.received - self.length]
                      + [start for _, start in self.jobs[:1]])
        self._drop_input(settled)
        return self._emit(settled)

    def finish(self) -> torch.Tensor:
        """Separate the rest; return the output from the last one given to the end."""
        time = self.received
        if time == 0:
            raise ValueError("mix is empty")
        if time <= self.length:  # one segment of the mix's own length, padded
            length = math.ceil(time / self.multiple) * self.multiple
            self.window = torch.ones(length, dtype=torch.float64)
            self.length = length
            self.buffer = F.pad(self.buffer, (0, length - self.buffer.shape[-1]))
            self.jobs = [(row, 0) for row in range(self.rows)]
        else:
            self.jobs += [(row, time - self.length) for row in range(self.rows)]
        self.total_jobs = max(self.total_jobs, self.done_jobs + len(self.jobs))
        while self.jobs:
            self._separate(self.batch_size)
        out = self._emit(time)
        assert out is not None  # at least one segment was separated
        return out

    def _separate(self, count: int) -> None:
        chunk, self.jobs = self.jobs[:count], self.jobs[count:]
        segments = torch.stack([self.buffer[row, start - self.base:start - self.base
                                            + self.length] for row, start in chunk])
        estimates = self.segment_fn(segments)
        if (estimates.dim() != 3 or estimates.shape[0] != len(chunk)
                or estimates.shape[2] != self.length):
            raise ValueError(f"segment_fn must return (n, n_sources, {self.length}) for n = "
                             f"{len(chunk)} segments, got {tuple(estimates.shape)}")
        end = max(start for _, start in chunk) + self.length - self.out_base
        if self.output is None:  # on the mix's device, whatever the model's
            self.output = torch.zeros(self.rows, estimates.shape[1], 0, dtype=estimates.dtype,
                                      device=self.buffer.device)
        if end > self.output.shape[-1]:
            grow = end - self.output.shape[-1]
            self.output = F.pad(self.output, (0, grow))
            self.weight = F.pad(self.weight, (0, grow))
        window = self.window.to(estimates)
        for (row, start), estimate in zip(chunk, estimates.to(self.output.device), strict=True):
            at = start - self.out_base
            self.output[row, :, at:at + self.length] += estimate * window
            if row == 0:
                self.weight[at:at + self.length] += self.window
        self.done_jobs += len(chunk)
        if self.progress is not None:
            self.progress(self.done_jobs, max(self.total_jobs, self.done_jobs + len(self.jobs)))

    def _drop_input(self, keep_from: int) -> None:
        if keep_from > self.base:
            self.buffer = self.buffer[:, keep_from - self.base:]
            self.base = keep_from

    def _emit(self, upto: int) -> torch.Tensor | None:
        if self.output is None:
            return None
        count = max(0, min(upto, self.out_base + self.output.shape[-1]) - self.out_base)
        done = self.output[..., :count] / self.weight[:count].to(self.output)
        self.output, self.weight = self.output[..., count:], self.weight[count:]
        self.out_base += count
        return done


def separate_long(mix: torch.Tensor, segment_fn: SegmentFn, segment_length: int, overlap: int,
                  multiple: int = 1, batch_size: int = 8,
                  progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """Separate a mix of any length segment by segment, with overlap-add.

    Args:
        mix: (time,) or (batch, time).
        segment_fn: (n, length) -> (n, n_sources, length) with n <= `batch_size`; `length` is
            `segment_length`, or for an input shorter than that, its length rounded up to a
            multiple of `multiple`. Segments come on `mix`'s device.
        segment_length: samples per segment, a multiple of `multiple`.
        overlap: samples shared by consecutive segments, at most segment_length / 2.
        multiple: every segment length is a multiple of this.
        batch_size: segments per call of `segment_fn` (bounds the memory).
        progress: called with (segments done, total segments) after every call.

    Returns:
        (n_sources, time) or (batch, n_sources, time), on `mix`'s device, in the estimates' dtype.
    """
    if mix.dim() not in (1, 2):
        raise ValueError(f"mix must be (time,) or (batch, time), got shape {tuple(mix.shape)}")
    _check(segment_length, overlap, multiple, batch_size)
    single = mix.dim() == 1
    mixes = mix[None] if single else mix  # (batch, time)
    if mixes.shape[-1] == 0:
        raise ValueError("mix is empty")
    stream = OverlapAdd(segment_fn, segment_length, overlap, multiple, batch_size,
                        rows=mixes.shape[0], total=mixes.shape[-1], progress=progress)
    pieces = [piece for piece in (stream.feed(mixes), stream.finish()) if piece is not None]
    output = torch.cat(pieces, dim=-1)
    return output[0] if single else output
