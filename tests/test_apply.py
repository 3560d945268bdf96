import pytest
import torch

from priorsep.separation.apply import crossfade_window, segment_starts, separate_long

N_SOURCES = 3


class Replicate:
    """Identity segment function: the mix segment in every source slot (times a per-source gain).

    Records the shape of every call.
    """

    def __init__(self, gains=(1.0, 1.0, 1.0)) -> None:
        self.gains = torch.tensor(gains)
        self.shapes: list[tuple[int, ...]] = []

    def __call__(self, segments: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(segments.shape))
        return segments[:, None, :] * self.gains[:, None]  # (n, N, length)


@pytest.mark.parametrize("segment_length, overlap", [(64, 32), (64, 16), (64, 0), (48, 24)])
def test_window_copies_sum_to_one(segment_length, overlap):
    window = crossfade_window(segment_length, overlap, dtype=torch.float64)
    assert (window > 0).all()
    hop = segment_length - overlap
    total = torch.zeros(hop * 6 + segment_length, dtype=torch.float64)
    for index in range(7):
        total[index * hop:index * hop + segment_length] += window
    # away from the two ends every sample is covered by full copies
    torch.testing.assert_close(total[segment_length:-segment_length],
                               torch.ones(len(total) - 2 * segment_length, dtype=torch.float64))


@pytest.mark.parametrize("time", [1, 37, 64, 65, 1001, 1024])
@pytest.mark.parametrize("overlap", [0, 16, 32])
def test_identity_reconstructs_the_mix(time, overlap):
    mix = torch.randn(time, generator=torch.Generator().manual_seed(time))
    replicate = Replicate()
    out = separate_long(mix, replicate, segment_length=64, overlap=overlap, multiple=8,
                        batch_size=3)
    assert out.shape == (N_SOURCES, time)
    torch.testing.assert_close(out, mix.expand(N_SOURCES, time), atol=1e-6, rtol=1e-6)
    assert all(shape[1] % 8 == 0 for shape in replicate.shapes)


def test_short_input_is_one_segment_padded_to_the_multiple():
    replicate = Replicate()
    out = separate_long(torch.randn(37), replicate, segment_length=64, overlap=16, multiple=8)
    assert replicate.shapes == [(1, 40)]
    assert out.shape == (N_SOURCES, 37)


def test_batch_of_mixes_and_per_source_gains():
    mix = torch.randn(3, 777)
    out = separate_long(mix, Replicate((1.0, -2.0, 0.5)), segment_length=128, overlap=32,
                        multiple=16, batch_size=5)
    assert out.shape == (3, N_SOURCES, 777)
    expected = mix[:, None, :] * torch.tensor([1.0, -2.0, 0.5])[:, None]
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-6)


def test_cross_fade_blends_neighbouring_segments():
    # segment j returns the constant j: a sample covered by segments j and j+1 gets their
    # window-weighted mean, a sample covered by one segment gets its value
    def constant(segments):
        values = segments[:, 0].round()  # each segment starts with its own index
        return values[:, None, None].expand(-1, 1, segments.shape[1]).clone()

    segment_length, overlap, time = 32, 8, 200
    starts = segment_starts(time, segment_length, overlap)
    mix = torch.zeros(time)
    for index, start in enumerate(starts):
        mix[start] = index
    out = separate_long(mix, constant, segment_length, overlap, batch_size=2)[0]
    window = crossfade_window(segment_length, overlap)
    hop = segment_length - overlap
    assert out[hop - 1] == 0 and out[segment_length] == 1
    blend = out[hop:segment_length]  # covered by segments 0 and 1
    torch.testing.assert_close(blend, window[:overlap])


def test_memory_is_bounded_by_the_batch_size():
    replicate = Replicate()
    time, segment_length, overlap = 16000, 256, 64
    out = separate_long(torch.randn(2, time), replicate, segment_length, overlap, batch_size=4)
    n_segments = len(segment_starts(time, segment_length, overlap))
    assert max(shape[0] for shape in replicate.shapes) <= 4
    assert all(shape[1] == segment_length for shape in replicate.shapes)
    assert sum(shape[0] for shape in replicate.shapes) == 2 * n_segments
    assert len(replicate.shapes) == -(-2 * n_segments // 4)
    assert out.shape == (2, N_SOURCES, time)


def test_progress_counts_segments():
    reports = []
    separate_long(torch.randn(500), Replicate(), 64, 16, batch_size=4,
                  progress=lambda done, total: reports.append((done, total)))
    total = len(segment_starts(500, 64, 16))
    assert reports == [(min(done, total), total) for done in range(4, total + 4, 4)]


def test_bad_arguments():
    with pytest.raises(ValueError, match="multiple"):
        separate_long(torch.randn(100), Replicate(), 60, 10, multiple=8)
    with pytest.raises(ValueError, match="overlap"):
        separate_long(torch.randn(100), Replicate(), 64, 40)
    with pytest.raises(ValueError, match="empty"):
        separate_long(torch.randn(0), Replicate(), 64, 16)
    with pytest.raises(ValueError, match="segment_fn must return"):
        separate_long(torch.randn(100), lambda segments: segments, 64, 16)
