"""Long audio in fixed segments with overlap-add: the one place that chunks and pads.

A mix of any length is cut into segments of `segment_length` samples that overlap by `overlap`
samples (hop = segment_length - overlap); the last one ends where the audio ends. A model only
ever sees whole segments. The estimates are cross-faded back with a window whose overlapping
copies sum to one (a flat top with sin**2 / cos**2 ramps of `overlap` samples; with 50 % overlap
it is a Hann window) and divided by the summed window, so a segment function that returns its
input rebuilds the input exactly, also where only one segment covers a sample (the two ends).
An input shorter than one segment is one segment of its own length, padded to a multiple of
`multiple` (a flow with k squeezes needs multiples of 2**k).

Segments go to the model `batch_size` at a time and are added into one preallocated output,
so memory is the output plus one batch of segments, whatever the length.

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
    if multiple < 1 or batch_size < 1:
        raise ValueError("multiple and batch_size must be at least 1")
    if segment_length < 1 or segment_length % multiple:
        raise ValueError(f"segment_length {segment_length} must be a positive multiple of "
                         f"{multiple}")
    if not 0 <= 2 * overlap <= segment_length:
        raise ValueError(f"overlap must be between 0 and segment_length / 2, got {overlap}")
    single = mix.dim() == 1
    mixes = mix[None] if single else mix  # (batch, time)
    batch, time = mixes.shape
    if time == 0:
        raise ValueError("mix is empty")
    if time <= segment_length:
        length = math.ceil(time / multiple) * multiple
        window = torch.ones(length, dtype=torch.float64)
    else:
        length = segment_length
        window = crossfade_window(segment_length, overlap)
    starts = segment_starts(time, segment_length, overlap)

    # the summed window is the same for every mix: (time,)
    window_sum = torch.zeros(time, dtype=torch.float64)
    for start in starts:
        valid = min(length, time - start)
        window_sum[start:start + valid] += window[:valid]

    # segment by segment, every row of a segment together (the channels of a stereo mix)
    jobs = [(row, start) for start in starts for row in range(batch)]
    output: torch.Tensor | None = None
    for first in range(0, len(jobs), batch_size):
        chunk = jobs[first:first + batch_size]
        segments = torch.stack([
            F.pad(mixes[row, start:start + length], (0, max(0, start + length - time)))
            for row, start in chunk
        ])  # (n, length)
        estimates = segment_fn(segments)
        if estimates.dim() != 3 or estimates.shape[0] != len(chunk) or estimates.shape[2] != length:
            raise ValueError(f"segment_fn must return (n, n_sources, {length}) for n = "
                             f"{len(chunk)} segments, got {tuple(estimates.shape)}")
        if output is None:
            output = torch.zeros(batch, estimates.shape[1], time, dtype=estimates.dtype,
                                 device=mix.device)
            window = window.to(dtype=estimates.dtype, device=mix.device)
        estimates = estimates.to(mix.device)
        for (row, start), estimate in zip(chunk, estimates, strict=True):
            valid = min(length, time - start)
            output[row, :, start:start + valid] += estimate[:, :valid] * window[:valid]
        if progress is not None:
            progress(first + len(chunk), len(jobs))
    assert output is not None  # at least one segment was processed
    output /= window_sum.to(dtype=output.dtype, device=output.device)
    return output[0] if single else output
