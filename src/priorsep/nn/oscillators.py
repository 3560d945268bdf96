"""Signal processors of the generator priors: small pure functions of tensors.

A periodic source of fundamental f0 (Hz), phase offset theta (cycles) and gain g is
`x[t] = g * W(frac(f0 * t / sample_rate + theta))`, W one period of its waveform (a wavetable
of `bins` values over [0, 1)). These functions render such a source, fold a signal by the
phase of a trial f0 (the average waveform it holds at that period) and correlate a fold with
a wavetable at every phase offset at once.

Reference: Shan et al. 2022, "Differentiable Wavetable Synthesis", arXiv 2111.10003 (the
wavetable oscillator); Engel et al. 2020, "DDSP", arXiv 2001.04643 (processors as functions).
"""

from __future__ import annotations

import math

import torch


def phase_positions(f0: torch.Tensor, phase: torch.Tensor, length: int,
                    sample_rate: int) -> torch.Tensor:
    """Where in its period every sample falls: `frac(f0 * t / sample_rate + phase)`.

    Computed in float64: a 4 kHz tone holds a thousand cycles in a quarter second, and float32
    would lose a tenth of a degree of phase by its end.

    Args:
        f0: (...,) Hz; phase: (...,) cycles.

    Returns:
        (..., length) float64 in [0, 1).
    """
    time = torch.arange(length, dtype=torch.float64, device=f0.device) / sample_rate
    cycles = f0.double()[..., None] * time + phase.double()[..., None]
    return cycles - torch.floor(cycles)


def render_table(table: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Read a periodic wavetable at fractional positions, with linear interpolation.

    `W(u) = (1 - w) * table[i] + w * table[(i + 1) mod bins]`, `i = floor(u * bins)`,
    `w = u * bins - i`: differentiable in the table (and in u between bins).

    Args:
        table: (..., bins) one period; positions: (..., length) in [0, 1), float64.

    Returns:
        (..., length) in the table's dtype.
    """
    bins = table.shape[-1]
    scaled = positions * bins
    index = torch.floor(scaled).long().clamp_(0, bins - 1)
    weight = (scaled - index).to(table.dtype)
    table = table.expand(*positions.shape[:-1], bins)
    low = torch.gather(table, -1, index)
    high = torch.gather(table, -1, (index + 1) % bins)
    return low + weight * (high - low)


def fold_by_phase(signal: torch.Tensor, f0: torch.Tensor, bins: int,
                  sample_rate: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum a signal's samples by the phase bin they fall in at trial fundamental(s) `f0`.

    `sums[b] = sum of x[t] over t with round(frac(f0 t / sample_rate) * bins) = b`, `counts[b]`
    the number of such samples. For x = g W(frac(f0 t + theta)), `sums / counts` is g W shifted
    by theta: the average waveform of the signal at that period.

    Args:
        signal: (..., time); f0: (..., n_trials) Hz, one row of trials per signal.

    Returns:
        (sums, counts), each (..., n_trials, bins), in the signal's dtype.
    """
    length = signal.shape[-1]
    # round(frac(f0 t / sr) * bins) mod bins = round(f0 bins / sr * t) mod bins: the whole
    # cycles are whole multiples of `bins`, so the bin follows from one product (float64, as
    # in `phase_positions`) without the fractional part; only float ties (a sample at a bin's
    # edge) may fall in the neighbouring bin
    step = f0.double() * (bins / sample_rate)  # bins advanced per sample
    time = torch.arange(length, dtype=torch.float64, device=f0.device)
    index = torch.round(step[..., None] * time).long()  # (..., n_trials, time)
    if bins & (bins - 1) == 0:
        index.bitwise_and_(bins - 1)  # mod a power of two
    else:
        index.remainder_(bins)
    shape = (*f0.shape, bins)
    values = signal.unsqueeze(-2).expand(*f0.shape, length)
    sums = torch.zeros(shape, dtype=signal.dtype, device=signal.device)
    sums.scatter_add_(-1, index, values)
    counts = torch.zeros(shape, dtype=signal.dtype, device=signal.device)
    one = torch.ones((), dtype=signal.dtype, device=signal.device)
    counts.scatter_add_(-1, index, one.expand(index.shape))
    return sums, counts


def phase_correlation(folded: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Circular cross-correlation over phase: `c[j] = sum_b folded[b] * table[(b + j) mod bins]`.

    With `folded` the sums of `fold_by_phase`, c[j] is the inner product of the signal with the
    wavetable rendered at phase offset theta = j / bins (each sample at its nearest bin); with
    the counts and the squared table it is that rendering's energy. All offsets in one FFT.

    Args:
        folded: (..., bins); table: broadcastable to it, (..., bins).

    Returns:
        (..., bins).
    """
    bins = folded.shape[-1]
    spectrum = torch.fft.rfft(folded, dim=-1).conj() * torch.fft.rfft(table, dim=-1)
    return torch.fft.irfft(spectrum, n=bins, dim=-1)


def resample_table(table: torch.Tensor, bins: int) -> torch.Tensor:
    """A periodic table at another number of bins, by trigonometric interpolation (its Fourier
    series, truncated when shrinking).

    Args:
        table: (..., bins_in).

    Returns:
        (..., bins).
    """
    size = table.shape[-1]
    if size == bins:
        return table
    spectrum = torch.fft.rfft(table, dim=-1)
    keep = min(spectrum.shape[-1], bins // 2 + 1)
    resized = torch.zeros(*spectrum.shape[:-1], bins // 2 + 1, dtype=spectrum.dtype,
                          device=spectrum.device)
    resized[..., :keep] = spectrum[..., :keep]
    return torch.fft.irfft(resized, n=bins, dim=-1) * (bins / size)


def fundamental(signal: torch.Tensor, f0: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Complex amplitude of the component at f0: `(2 / T) sum_t x[t] exp(-2 pi i f0 t / rate)`.

    For x = A cos(2 pi f0 t / rate + phi) over many periods this is about A exp(i phi).

    Args:
        signal: (..., time); f0: (...,) Hz.

    Returns:
        (...,) complex128.
    """
    length = signal.shape[-1]
    zero = torch.zeros((), dtype=torch.float64, device=f0.device)
    positions = phase_positions(f0, zero, length, sample_rate)
    basis = torch.exp(-2j * math.pi * positions)
    return 2 * (signal.double() * basis).sum(-1) / length


def spectral_peaks(signal: torch.Tensor, n: int, sample_rate: int, low: float = 0.0,
                   high: float | None = None, pad: int = 4) -> torch.Tensor:
    """Frequencies of the `n` strongest spectral peaks of each signal, strongest first.

    Hann-windowed FFT zero-padded `pad` times, local maxima of the magnitude between `low` and
    `high` Hz, each refined by a parabola through the log magnitudes of its bin and the two
    neighbours (Smith & Serra's quadratic interpolation). Rows with fewer peaks repeat the
    weakest one found.

    Args:
        signal: (..., time).

    Returns:
        (..., n) Hz, float64.
    """
    length = signal.shape[-1]
    window = torch.hann_window(length, periodic=False, dtype=torch.float64, device=signal.device)
    size = pad * length
    magnitude = torch.fft.rfft(signal.double() * window, n=size, dim=-1).abs()
    log_magnitude = torch.log(magnitude + 1e-12)
    frequencies = torch.arange(magnitude.shape[-1], dtype=torch.float64,
                               device=signal.device) * sample_rate / size
    high = sample_rate / 2 if high is None else high
    inside = (frequencies >= low) & (frequencies <= high)
    inside[0] = inside[-1] = False
    centre = log_magnitude[..., 1:-1]
    peak = (centre >= log_magnitude[..., :-2]) & (centre > log_magnitude[..., 2:])
    peak = _pad_false(peak) & inside
    index = magnitude.masked_fill(~peak, -1.0).topk(min(n, magnitude.shape[-1]), dim=-1).indices
    index = index.clamp(1, magnitude.shape[-1] - 2)
    left = torch.gather(log_magnitude, -1, index - 1)
    middle = torch.gather(log_magnitude, -1, index)
    right = torch.gather(log_magnitude, -1, index + 1)
    curvature = left - 2 * middle + right
    offset = torch.where(curvature < 0, 0.5 * (left - right) / curvature.clamp_max(-1e-12),
                         torch.zeros_like(curvature)).clamp(-0.5, 0.5)
    return (index + offset) * sample_rate / size


def _pad_false(mask: torch.Tensor) -> torch.Tensor:
    """(..., n - 2) -> (..., n): False added at both ends."""
    false = torch.zeros(*mask.shape[:-1], 1, dtype=torch.bool, device=mask.device)
    return torch.cat([false, mask, false], dim=-1)


def yin(signal: torch.Tensor, sample_rate: int, f0_min: float, f0_max: float,
        threshold: float = 0.15) -> tuple[torch.Tensor, torch.Tensor]:
    """The fundamental of a (monophonic) signal by YIN.

    Over the first half of the signal (W samples), the difference function
    `d(tau) = sum_t (x[t] - x[t + tau])**2` (from an FFT cross-correlation and running energies)
    is normalised by its cumulative mean, `d'(tau) = d(tau) tau / sum_{j <= tau} d(j)`; the
    period is the first local minimum of d' below `threshold` between rate / f0_max and
    rate / f0_min (else the global minimum), refined by a parabola. Unlike the strongest
    spectral peak, it does not jump to a harmonic when the fundamental is weak.

    Reference: de Cheveigné & Kawahara 2002, "YIN, a fundamental frequency estimator for
    speech and music", JASA 111(4).

    Args:
        signal: (..., time); the longest period (rate / f0_min) must be below time / 2.

    Returns:
        (f0 in Hz, d' at the period: 0 for a periodic signal, about 1 for noise), each (...,).
    """
    length = signal.shape[-1]
    window = length // 2
    tau_min = max(2, int(sample_rate / f0_max))
    tau_max = min(window - 1, int(math.ceil(sample_rate / f0_min)))
    x = signal.double().reshape(-1, length)
    size = 1 << (2 * length - 1).bit_length()
    spectrum = torch.fft.rfft(x, n=size)
    head = torch.fft.rfft(x[:, :window], n=size)
    cross = torch.fft.irfft(head.conj() * spectrum, n=size)[:, :window]  # sum_t x_t x_{t+tau}
    squares = torch.cat([x.new_zeros(x.shape[0], 1), torch.cumsum(x.pow(2), -1)], -1)
    taus = torch.arange(window, device=x.device)
    shifted = squares[:, taus + window] - squares[:, taus]  # sum_{t<W} x_{t+tau}**2
    difference = squares[:, window:window + 1] + shifted - 2 * cross  # (R, W)
    difference[:, 0] = 0.0
    cumulative = torch.cumsum(difference[:, 1:], -1) / taus[1:]
    normalised = torch.ones_like(difference)
    normalised[:, 1:] = difference[:, 1:] / cumulative.clamp_min(1e-12)
    part = normalised[:, tau_min:tau_max + 1]
    local = torch.zeros_like(part, dtype=torch.bool)
    local[:, 1:-1] = (part[:, 1:-1] <= part[:, :-2]) & (part[:, 1:-1] <= part[:, 2:])
    below = local & (part < threshold)
    first = torch.where(below.any(-1), below.float().argmax(-1), part.argmin(-1))
    index = (first + tau_min).clamp(1, window - 2)
    rows = torch.arange(x.shape[0], device=x.device)
    left, middle, right = (normalised[rows, index + offset] for offset in (-1, 0, 1))
    curvature = left - 2 * middle + right
    shift = torch.where(curvature > 0, 0.5 * (left - right) / curvature.clamp_min(1e-12),
                        torch.zeros_like(curvature)).clamp(-0.5, 0.5)
    f0 = sample_rate / (index + shift)
    shape = signal.shape[:-1]
    return f0.reshape(shape), middle.reshape(shape)


def fill_circular(values: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Fill the unknown bins of periodic tables by linear interpolation between the nearest
    known bins on either side (all zeros where none is known).

    Args:
        values, known: (..., bins).
    """
    bins = values.shape[-1]
    position = torch.arange(bins, device=values.device).expand_as(values)
    tripled = torch.cat([position - bins, position, position + bins], dim=-1)
    marked = torch.cat([known] * 3, dim=-1)
    before = torch.where(marked, tripled, torch.full_like(tripled, -10 * bins))
    before = torch.cummax(before, dim=-1).values[..., bins:2 * bins]
    after = torch.where(marked, tripled, torch.full_like(tripled, 10 * bins))
    after = torch.flip(torch.cummin(torch.flip(after, [-1]), dim=-1).values,
                       [-1])[..., bins:2 * bins]
    low = torch.gather(values, -1, before % bins)
    high = torch.gather(values, -1, after % bins)
    span = (after - before).clamp_min(1)
    weight = (position - before) / span
    filled = low + weight * (high - low)
    return torch.where(known, values, torch.where(known.any(-1, keepdim=True), filled,
                                                  torch.zeros_like(values)))
