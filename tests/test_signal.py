"""The STFT pair, the Wiener filter and MISI (`priorsep.signal`), against closed forms."""

from __future__ import annotations

import math

import pytest
import torch

from priorsep.metrics import si_sdr
from priorsep.signal.filtering import misi, wiener
from priorsep.signal.transforms import Spectrogram


@pytest.mark.parametrize("n_fft,hop", [(64, 16), (2048, 256), (512, 128)])
def test_istft_inverts_stft_exactly(n_fft, hop):
    transform = Spectrogram(n_fft, hop)
    signal = torch.randn(2, 3, 5000, dtype=torch.float64)
    spectra = transform.stft(signal)
    assert spectra.shape == (2, 3, n_fft // 2 + 1, 5000 // hop + 1)
    assert torch.allclose(transform.istft(spectra, 5000), signal, atol=1e-10)


def test_a_sine_lands_in_its_bin_with_its_amplitude():
    transform = Spectrogram(256, 64)
    rate, bin_index, amplitude = 16000, 20, 0.7
    time = torch.arange(4096, dtype=torch.float64) / rate
    sine = amplitude * torch.cos(2 * math.pi * bin_index * rate / 256 * time)
    spectra = transform.stft(sine)[:, 10:-10]  # away from the padded edges
    magnitudes = spectra.abs()
    assert bool((magnitudes.argmax(dim=0) == bin_index).all())
    # a Hann window's sum is n_fft / 2: a cosine of amplitude A gives A n_fft / 4 in its bin
    assert torch.allclose(magnitudes[bin_index], torch.full_like(magnitudes[bin_index],
                                                                 amplitude * 256 / 4), rtol=1e-6)


def test_white_noise_power_per_bin_is_the_window_energy():
    transform = Spectrogram(128, 32)
    noise = torch.randn(64, 4096, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    power = transform.stft(noise)[..., 1:-1, 4:-4].abs().pow(2).mean()
    assert abs(float(power) / transform.noise_power - 1) < 0.02


def test_wiener_shares_add_up_to_the_mix_and_follow_the_variances():
    mix = torch.randn(2, 33, 10, dtype=torch.complex128)
    variances = torch.rand(2, 3, 33, 10, dtype=torch.float64)
    variances[:, 2, 5] = 0  # one source silent in one bin
    shares = wiener(variances, mix)
    assert torch.allclose(shares.sum(dim=1), mix)
    assert torch.allclose(shares[:, 0] / mix, (variances[:, 0] / variances.sum(1)).to(mix))
    assert bool((shares[:, 2, 5] == 0).all())
    nothing = wiener(torch.zeros(1, 2, 33, 10, dtype=torch.float64), mix[:1])
    assert torch.allclose(nothing, mix[:1, None].expand(1, 2, 33, 10) / 2)


def test_misi_with_the_true_magnitudes_recovers_the_sources():
    transform = Spectrogram(512, 128)
    generator = torch.Generator().manual_seed(0)
    time = torch.arange(16000, dtype=torch.float64) / 16000
    sources = torch.stack([0.5 * torch.sin(2 * math.pi * 440 * time),
                           0.3 * torch.sign(torch.sin(2 * math.pi * 97 * time))
                           + 0.01 * torch.randn(16000, generator=generator, dtype=torch.float64)])
    mix = sources.sum(0, keepdim=True)  # (1, T)
    magnitudes = transform.stft(sources).abs()[None]
    masked = transform.istft(wiener(magnitudes, transform.stft(mix)), 16000)[0]
    rebuilt = misi(magnitudes, mix, transform, iterations=30)[0]
    assert torch.allclose(rebuilt.sum(0), mix[0], atol=1e-9)  # they add up to the mix
    before, after = si_sdr(masked, sources), si_sdr(rebuilt, sources)
    assert bool((after > before + 3).all()), (before, after)


def test_with_magnitudes_keeps_the_phases_and_sets_the_magnitudes():
    from priorsep.signal.filtering import with_magnitudes

    spectra = torch.randn(3, 5, 7, dtype=torch.complex128)
    spectra[0, 0, 0] = 0
    magnitudes = torch.rand(3, 5, 7, dtype=torch.float64)
    out = with_magnitudes(spectra, magnitudes)
    sounding = spectra != 0
    assert torch.allclose(out.abs()[sounding], magnitudes[sounding])
    assert torch.allclose(torch.angle(out)[sounding], torch.angle(spectra)[sounding])
    assert out[0, 0, 0] == 0  # a bin with no phase stays silent


@pytest.mark.parametrize("which", ["share", "model", "blend"])
def test_the_wiener_method_rebuilds_from_the_magnitudes_it_is_given(which):
    """Exact variances (the true power spectra): the model's magnitudes with MISI are the
    sources' own and recover them far beyond the mask; the shares' stay near the mask; the
    blend lies between."""
    from priorsep.separation.wiener import misi_magnitudes

    transform = Spectrogram(512, 128)
    time = torch.arange(16000, dtype=torch.float64) / 16000
    sources = torch.stack([0.5 * torch.sin(2 * math.pi * 440 * time),
                           0.3 * torch.sign(torch.sin(2 * math.pi * 97 * time))])
    mix = sources.sum(0, keepdim=True)
    variances = transform.stft(sources).abs().pow(2)[None]
    shares = wiener(variances, transform.stft(mix))
    chosen = misi_magnitudes(variances, shares, which)
    expected = {"share": shares.abs(), "model": variances.sqrt(),
                "blend": (variances.sqrt() * shares.abs()).sqrt()}[which]
    assert torch.allclose(chosen, expected)
    rebuilt = misi(chosen, mix, transform, iterations=30)[0]
    masked = transform.istft(shares, 16000)[0]
    gain = (si_sdr(rebuilt, sources) - si_sdr(masked, sources)).min()
    assert float(gain) > {"share": -1, "model": 10, "blend": 3}[which], gain


def test_misi_gives_a_silent_source_none_of_the_error():
    """Magnitudes that do not explain the mix: the unexplained error goes to the sources that
    sound, by their share of the magnitudes; equal shares (Gunawan and Sen) put a third of it
    into the silent slot."""
    transform = Spectrogram(512, 128)
    time = torch.arange(8000, dtype=torch.float64) / 8000
    sources = torch.stack([0.5 * torch.sin(2 * math.pi * 440 * time),
                           0.3 * torch.sin(2 * math.pi * 97 * time),
                           torch.zeros(8000, dtype=torch.float64)])
    mix = sources.sum(0, keepdim=True) + 0.05 * torch.randn(1, 8000, dtype=torch.float64,
                                                            generator=torch.Generator()
                                                            .manual_seed(0))
    magnitudes = transform.stft(sources).abs()[None]
    shared = misi(magnitudes, mix, transform, iterations=10)[0]
    equal = misi(magnitudes, mix, transform, iterations=10,
                 weights=torch.full_like(magnitudes, 1 / 3))[0]
    for rebuilt in (shared, equal):
        assert torch.allclose(rebuilt.sum(0), mix[0], atol=1e-9)
    energy = mix.pow(2).sum()
    assert float(10 * torch.log10(shared[2].pow(2).sum() / energy)) < -100
    assert float(10 * torch.log10(equal[2].pow(2).sum() / energy)) > -40
