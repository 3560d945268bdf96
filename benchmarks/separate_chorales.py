"""Separation of real instruments: the test chorales (violin, clarinet, saxophone, bassoon).

In one invocation, on the same excerpts, for every system given (a model with a method, and
for the spectral families each output stage: `--phase mix` the Wiener share of the mix's
STFT, `--phase misi` its magnitudes with MISI phases):
- SI-SDR improvement over the mix per instrument (the mix itself is the **lower anchor**,
  SI-SDRi 0 by definition);
- the **oracles**: the ideal ratio mask (IRM: each source's STFT magnitude over their sum,
  applied to the mix; 2048-sample frames, hop 256, the spectral models' own transform), the
  IRM's magnitudes with MISI phases, and per spectral model its **fit to the true sources**
  (each source's variances fitted to that source alone, then Wiener-filtered from the mix:
  what the family can represent at all);
- **SDR** by BSS Eval with fast-bss-eval (the `eval` extra; 512-tap filter, one figure per
  excerpt, median over pieces);
- the real-time factor of each system (compute seconds per second of audio, one process).

Conditions (each a block of rows):
- `test`: the test pieces as rendered for training (FluidR3_GM);
- `--soundfont PATH`: the same pieces rendered with another General MIDI soundfont (models
  trained on the first: other recordings of the instruments);
- `--rests`: in every excerpt one part rests for its middle third (rotating over the pieces);
  the row reports the energy each system writes into the resting slot there, in dB relative to
  the mix's energy over the same stretch (lower is better; the target is -30 dB or less);
- `--gain-spread G`: each source scaled by a gain drawn from [1/G, 1] before mixing (and the
  whole mix by a level drawn from [0.05, 2]).

    python benchmarks/separate_chorales.py --model chorales-nmf --model chorales \
        --phase mix --phase misi --pieces 12 --seconds 10 \
        --soundfont /usr/share/sounds/sf2/TimGM6mb.sf2 --rests

Tune on `--split validation`, report on `--split test`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from priorsep.api import Separator
from priorsep.data.chorales import SOURCES, ensure_chorales
from priorsep.data.musdb import MusdbWav
from priorsep.metrics import si_sdr
from priorsep.signal.filtering import misi, wiener
from priorsep.signal.transforms import Spectrogram

ORACLE_TRANSFORM = Spectrogram(2048, 256)
MISI_ITERATIONS = 30


def ideal_ratio_mask(sources: torch.Tensor, mix: torch.Tensor, phase: str = "mix"
                     ) -> torch.Tensor:
    """The mix masked by each source's share of the summed STFT magnitudes (with `phase`
    "misi", those magnitudes with MISI phases).

    Args:
        sources: (n_sources, time) the contributions to `mix` (time,).

    Returns:
        (n_sources, time) contributions.
    """
    magnitudes = ORACLE_TRANSFORM.stft(sources.double()).abs()[None]  # (1, N, F, T)
    shares = wiener(magnitudes, ORACLE_TRANSFORM.stft(mix.double())[None])
    if phase == "misi":
        return misi(shares.abs(), mix.double()[None], ORACLE_TRANSFORM, MISI_ITERATIONS)[0].float()
    return ORACLE_TRANSFORM.istft(shares, mix.shape[-1])[0].float()


def family_fit(separator: Separator, contributions: torch.Tensor, mix: torch.Tensor
               ) -> torch.Tensor | None:
    """Wiener estimates from each source's own fitted variances (None: not a spectral family).

    Args:
        contributions: (n_sources, time) a_k s_k; mix: (time,) their sum.
    """
    priors = separator.priors
    if not priors.has_power_spectra:
        return None
    transform = priors.transform
    with torch.no_grad():
        variances = priors.source_variances(transform.stft(contributions)[None])
        return transform.istft(wiener(variances, transform.stft(mix)[None]), mix.shape[-1])[0]


def bss_sdr(estimates: torch.Tensor, sources: torch.Tensor) -> list[float] | None:
    """BSS Eval SDR (dB) per source with fast-bss-eval, or None when it is not installed."""
    try:
        import fast_bss_eval
    except ImportError:
        return None
    threads = torch.get_num_threads()
    # the torch backend (0.1.4's numpy one fails under numpy 2 in np.linalg.solve), on one
    # thread: with two, this torch build's batched lu_solve fails ("Pivots given to lu_solve")
    torch.set_num_threads(1)
    try:  # (sdr, sir, sar), each (n_sources,), the sources kept in their order
        values = fast_bss_eval.bss_eval_sources(sources.double(), estimates.double(),
                                                filter_length=512, compute_permutation=False)[0]
    except RuntimeError:  # singular: a silent reference or estimate (LinAlgError is one)
        return [float("nan")] * sources.shape[0]
    finally:
        torch.set_num_threads(threads)
    return [float(v) for v in values]


def load_pieces(root: Path, split: str, sample_rate: int, count: int, offset: float,
                seconds: float) -> list[tuple[str, torch.Tensor]]:
    """(name, (n_sources, time)) of the first `count` pieces of a split (0: all)."""
    tracks = MusdbWav(root / "pieces", split, sample_rate, SOURCES)
    pieces = []
    for index in range(len(tracks) if count <= 0 else min(count, len(tracks))):
        length = int(seconds * sample_rate) if seconds > 0 else None
        pieces.append((tracks.track_names[index], tracks.read(index, offset, length)))
    return pieces


def with_rest(truth: torch.Tensor, index: int) -> tuple[torch.Tensor, int, slice]:
    """The excerpt with part `index % N` silent over its middle third: (sources, part, span)."""
    part = index % truth.shape[0]
    third = truth.shape[-1] // 3
    span = slice(third, 2 * third)
    rested = truth.clone()
    rested[part, span] = 0
    return rested, part, span


def with_gains(truth: torch.Tensor, index: int, spread: float) -> torch.Tensor:
    """Each source scaled by a gain from [1/spread, 1] and the whole by a level from
    [0.05, 2], drawn from a generator seeded by the piece's index."""
    generator = torch.Generator().manual_seed(1000 + index)
    gains = 1 / spread + (1 - 1 / spread) * torch.rand(truth.shape[0], generator=generator)
    level = 0.05 + 1.95 * torch.rand(1, generator=generator)
    return truth * gains[:, None] * level


def median(values: list[float]) -> float:
    finite = [v for v in values if v == v]
    return statistics.median(finite) if finite else float("nan")


class Table:
    """Rows of per-source figures, printed as Markdown as they come and kept for JSON."""

    def __init__(self, sources: tuple[str, ...]) -> None:
        self.sources = sources
        self.rows: list[dict] = []

    def header(self, title: str, unit: str) -> None:
        print(f"\n{title}")
        print("| condition | system | estimate | " + " | ".join(self.sources)
              + f" | mean {unit} | " + " | ".join(f"{s} SDR" for s in self.sources)
              + " | RTF |")
        print("|" + "---|" * (2 * len(self.sources) + 5), flush=True)

    def add(self, condition: str, system: str, estimate: str, values: list[float],
            sdr: list[float] | None = None, rtf: float | None = None) -> None:
        mean = statistics.fmean(values)
        cells = " | ".join(f"{v:+.2f}" for v in values)
        sdr_cells = " | ".join(f"{v:+.2f}" for v in sdr) if sdr else \
            " | ".join("" for _ in values)
        print(f"| {condition} | {system} | {estimate} | {cells} | {mean:+.2f} | {sdr_cells} | "
              f"{'' if rtf is None else f'{rtf:.2f}'} |", flush=True)
        self.rows.append({"condition": condition, "system": system, "estimate": estimate,
                          "values": dict(zip(self.sources, values)), "mean": mean,
                          "sdr_median": dict(zip(self.sources, sdr)) if sdr else None,
                          "rtf": rtf})


def build_systems(args) -> list[tuple[str, Separator]]:
    systems = []
    for model in args.model:
        for method in args.method or [None]:
            separator = Separator.from_pretrained(model, method=method, steps=args.steps)
            separator.batch_size = args.batch_size
            unknown = [s for s in separator.sources if s not in SOURCES]
            if unknown or len(separator.sources) != len(SOURCES):
                raise SystemExit(f"{model}: its sources ({', '.join(separator.sources)}) are "
                                 f"not the chorale instruments ({', '.join(SOURCES)})")
            phases = args.phase if separator.method == "wiener" else [None]
            for phase in phases or [None]:
                if phase is not None:
                    separator = Separator.from_pretrained(model, method=method)
                    separator.batch_size = args.batch_size
                    separator.configure(phase=phase)
                label = f"{model} ({separator.method}" + (f", {phase})" if phase else ")")
                systems.append((label, separator))
    return systems


def run_condition(condition: str, pieces: list[tuple[str, torch.Tensor]], systems,
                  table: Table, args) -> None:
    """Separate every piece with every system and add the rows of one condition."""
    rate = systems[0][1].sample_rate
    audio_seconds = sum(p.shape[-1] for _, p in pieces) / rate
    rests = condition.startswith("rests")
    prepared = []
    for index, (_, truth) in enumerate(pieces):
        part, span = None, None
        if rests:
            truth, part, span = with_rest(truth, index)
        elif args.gain_spread and condition.startswith("gains"):
            truth = with_gains(truth, index, args.gain_spread)
        prepared.append((truth, part, span))
    mixing = systems[0][1].mixing
    weights = mixing.weights(len(SOURCES))

    def contributions(truth: torch.Tensor) -> torch.Tensor:
        return truth * weights[:, None]

    anchors = [si_sdr(mixing(t[None])[0].expand_as(t), t) for t, _, _ in prepared]

    def improvement(estimates: list[torch.Tensor]) -> tuple[list[float], list[float] | None]:
        gains = torch.stack([si_sdr(e, t) - a for e, (t, _, _), a in
                             zip(estimates, prepared, anchors)])
        sdrs = [bss_sdr(e, t) for e, (t, _, _) in zip(estimates, prepared)]
        per = (None if any(s is None for s in sdrs) else
               [median([row[k] for row in sdrs]) for k in range(len(SOURCES))])
        return gains.mean(dim=0).tolist(), per

    def rest_energy(estimates: list[torch.Tensor]) -> list[float]:
        """Per part: the energy written into its slot while it rests, relative to the mix's
        energy over that stretch (dB; the mean over the pieces where that part rests)."""
        values: list[list[float]] = [[] for _ in SOURCES]
        for estimate, (truth, part, span) in zip(estimates, prepared):
            mix = mixing(truth[None])[0]
            written = (weights[part] * estimate[part, span]).pow(2).sum()
            values[part].append(float(10 * torch.log10(written / mix[span].pow(2).sum()
                                                       + 1e-12)))
        return [statistics.fmean(v) if v else float("nan") for v in values]

    if rests:
        table.header(f"{condition}: energy written into the resting part's slot while it "
                     "rests, dB of the mix's energy there (lower is better)", "dB")
    else:
        table.header(f"{condition}: {len(pieces)} pieces of {audio_seconds / len(pieces):.1f} s "
                     f"at {rate} Hz; SI-SDRi (dB, mean over pieces) per instrument; SDR (dB, "
                     "median over pieces)", "SI-SDRi")
    fits_done: set[str] = set()
    for label, separator in systems:
        started = time.perf_counter()
        estimates = []
        for truth, _, _ in prepared:
            with torch.no_grad():
                estimates.append(separator.separate_tensor(mixing(truth[None])[0]))
        rtf = (time.perf_counter() - started) / audio_seconds
        if rests:
            table.add(condition, label, "separated", rest_energy(estimates), rtf=rtf)
            continue
        table.add(condition, label, "separated", *improvement(estimates), rtf=rtf)
        model = label.split(" (")[0]
        if model in fits_done:
            continue
        fits_done.add(model)
        fits = [family_fit(separator, contributions(t), mixing(t[None])[0]) for t, _, _ in
                prepared]
        if fits[0] is not None:
            table.add(condition, model, "oracle: family's fit to the true sources",
                      *improvement([f / weights[:, None] for f in fits]))
    if rests:
        return
    for phase in ("mix", "misi"):
        oracle = [ideal_ratio_mask(contributions(t), mixing(t[None])[0], phase)
                  / weights[:, None] for t, _, _ in prepared]
        table.add(condition, "oracle", "ideal ratio mask" + (" + MISI" if phase == "misi"
                                                              else ""), *improvement(oracle))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True,
                        help="model id (repeat to compare); its sources must be the chorale "
                             f"instruments ({', '.join(SOURCES)})")
    parser.add_argument("--method", action="append", default=None,
                        help="separation method (repeat; default: each model's own)")
    parser.add_argument("--phase", action="append", default=None, choices=["mix", "misi"],
                        help="output stage of the wiener method (repeat; default: the "
                             "model's stored one)")
    parser.add_argument("--steps", type=int, default=None, help="score evaluations per segment")
    parser.add_argument("--split", default="test", choices=["test", "validation"])
    parser.add_argument("--pieces", type=int, default=12, help="how many pieces (0: all)")
    parser.add_argument("--offset", type=float, default=0.0, help="seconds into each piece")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="seconds per piece (0: the whole piece)")
    parser.add_argument("--soundfont", type=Path, action="append", default=[],
                        help="also separate the pieces rendered with this soundfont (repeat)")
    parser.add_argument("--rests", action="store_true",
                        help="also measure what is written into a resting part's slot")
    parser.add_argument("--gain-spread", type=float, default=0.0,
                        help="also separate mixes whose sources have gains in [1/G, 1]")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    systems = build_systems(args)
    rate = systems[0][1].sample_rate
    table = Table(SOURCES)

    def say(line: str) -> None:
        print(f"# {line}", file=sys.stderr)

    pieces = load_pieces(ensure_chorales(rate, say), args.split, rate, args.pieces, args.offset,
                         args.seconds)
    run_condition(args.split, pieces, systems, table, args)
    for soundfont in args.soundfont:
        other = ensure_chorales(rate, say, soundfont=soundfont, splits=(args.split,))
        run_condition(f"{args.split}, {soundfont.stem}",
                      load_pieces(other, args.split, rate, args.pieces, args.offset,
                                  args.seconds), systems, table, args)
    if args.gain_spread:
        run_condition(f"gains [1/{args.gain_spread:g}, 1], level [0.05, 2]", pieces, systems,
                      table, args)
    if args.rests:
        run_condition("rests", pieces, systems, table, args)
    if args.json_path:
        with open(args.json_path, "w") as handle:
            json.dump({"split": args.split, "pieces": args.pieces, "offset": args.offset,
                       "seconds": args.seconds, "rows": table.rows}, handle, indent=2)


if __name__ == "__main__":
    main()
