"""Separation of real instruments: the test chorales (violin, clarinet, saxophone, bassoon).

For every model and method given, each test piece of the `chorales` dataset (rendered into the
cache on first use; see `priorsep.data.chorales`) is mixed with the model's own mixing (for
the four sources and the mean, the dataset's mixture.wav) and separated whole through the
segmenting path (`Separator.separate_tensor`: segments, overlap-add), then scored per
instrument:
- SI-SDR improvement over the mix (the mix itself, or the least-norm sources that mix to it,
  is the **lower anchor**, SI-SDRi 0 by definition; its SI-SDR is printed);
- two **oracles**: the true sources sent through the same segmenting path (what the path itself
  loses), and the ideal ratio mask (IRM: each source's STFT magnitude over the sum of all of
  them, applied to the mix; 1024-sample frames, hop 256), the usual upper reference of
  mask-based separation;
- **SDR** by BSS Eval with fast-bss-eval (the `eval` extra): the `bss_eval_sources` SDR with a
  512-tap time-invariant distortion filter, as BSS Eval v4, over each excerpt. fast-bss-eval
  was picked over museval because it needs neither ffmpeg nor the musdb stack (museval's
  import pulls in stempeg), and is far faster for minute-long pieces; the figure is one SDR
  per excerpt, not SiSEC's median over one-second frames. Without it the SDR column is left
  out and a line says why.

    python benchmarks/separate_chorales.py --model runs/chorales-score --seconds 10
    python benchmarks/separate_chorales.py --model A --model B --method diffusion \
        --method langevin --steps 50 --pieces 8 --json chorales.json

`--seconds` crops each piece (from `--offset`) so that a run fits; 0 separates whole pieces.
Tune on `--split validation`, report on `--split test`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch

from priorsep.api import Separator
from priorsep.data.chorales import SOURCES, ensure_chorales
from priorsep.data.musdb import MusdbWav
from priorsep.evaluation.separation import oracle_estimates
from priorsep.metrics import si_sdr

IRM_FRAME, IRM_HOP = 1024, 256


def ideal_ratio_mask(sources: torch.Tensor, mix: torch.Tensor) -> torch.Tensor:
    """The mix masked by each source's share of the summed STFT magnitudes.

    Args:
        sources: (n_sources, time); mix: (time,).

    Returns:
        (n_sources, time).
    """
    window = torch.hann_window(IRM_FRAME, dtype=torch.float64)

    def stft(x: torch.Tensor) -> torch.Tensor:
        return torch.stft(x.double(), IRM_FRAME, IRM_HOP, window=window, return_complex=True)

    magnitudes = stft(sources).abs()  # (N, F, frames)
    mask = magnitudes / magnitudes.sum(dim=0, keepdim=True).clamp_min(1e-12)
    masked = mask * stft(mix)[None]
    return torch.istft(masked, IRM_FRAME, IRM_HOP, window=window,
                       length=mix.shape[-1]).float()


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


def load_pieces(root, split: str, sample_rate: int, sources: tuple[str, ...], count: int,
                offset: float, seconds: float) -> list[tuple[str, torch.Tensor]]:
    """(name, (n_sources, time)) of the first `count` pieces of a split (0: all)."""
    tracks = MusdbWav(root / "pieces", split, sample_rate, sources)
    pieces = []
    for index in range(len(tracks) if count <= 0 else min(count, len(tracks))):
        length = int(seconds * sample_rate) if seconds > 0 else None
        audio = tracks.read(index, offset, length)
        pieces.append((tracks.track_names[index], audio))
    return pieces


def median(values: list[float]) -> float:
    finite = [v for v in values if v == v]
    return statistics.median(finite) if finite else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True,
                        help="model id (repeat to compare); its sources must be chorale "
                             f"instruments ({', '.join(SOURCES)})")
    parser.add_argument("--method", action="append", default=None,
                        help="separation method (repeat; default: each model's own)")
    parser.add_argument("--steps", type=int, default=None, help="score evaluations per segment")
    parser.add_argument("--split", default="test", choices=["test", "validation"])
    parser.add_argument("--pieces", type=int, default=0, help="how many pieces (0: all)")
    parser.add_argument("--offset", type=float, default=0.0, help="seconds into each piece")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="seconds per piece (0: the whole piece)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rows, have_sdr = [], True
    printed_header: set[tuple[str, ...]] = set()
    for model in args.model:
        for method in args.method or [None]:
            separator = Separator.from_pretrained(model, method=method, steps=args.steps)
            separator.batch_size = args.batch_size
            sources = separator.sources
            unknown = [s for s in sources if s not in SOURCES]
            if unknown:
                raise SystemExit(f"{model}: source(s) {', '.join(unknown)} are not chorale "
                                 f"instruments ({', '.join(SOURCES)})")
            rate = separator.sample_rate
            root = ensure_chorales(rate, lambda line: print(f"# {line}", file=sys.stderr))
            pieces = load_pieces(root, args.split, rate, sources, args.pieces, args.offset,
                                 args.seconds)
            audio_seconds = sum(p.shape[-1] for _, p in pieces) / rate
            scores: dict[str, list[list[float]]] = {k: [] for k in
                                                    ("mix", "separated", "path", "irm")}
            sdrs: dict[str, list[list[float]]] = {k: [] for k in scores}
            compute = 0.0
            for _, truth in pieces:
                mix = separator.mixing(truth[None])[0]  # (time,)
                started = time.perf_counter()
                with torch.no_grad():
                    separated = separator.separate_tensor(mix)
                compute += time.perf_counter() - started
                estimates = {
                    "mix": separator.mixing.least_norm_sources(mix, len(sources)),
                    "separated": separated,
                    "path": oracle_estimates(truth[None], separator)[0],
                    "irm": ideal_ratio_mask(truth, mix),
                }
                for kind, estimate in estimates.items():
                    scores[kind].append(si_sdr(estimate, truth).tolist())
                    values = bss_sdr(estimate, truth)
                    have_sdr = have_sdr and values is not None
                    sdrs[kind].append(values or [])
            label = f"{model} ({separator.method})"
            header = tuple(sources)
            if header not in printed_header:
                printed_header.add(header)
                print(f"\n{len(pieces)} {args.split} chorales, "
                      f"{audio_seconds / max(len(pieces), 1):.1f} s each on average, "
                      f"{rate} Hz; SI-SDRi (dB, mean over pieces) per instrument; "
                      "SDR (dB, median over pieces)")
                print("| model (method) | estimate | " + " | ".join(sources)
                      + " | mean SI-SDRi | " + " | ".join(f"{s} SDR" for s in sources)
                      + " | RTF |")
                print("|" + "---|" * (2 * len(sources) + 4))
            anchor = torch.tensor(scores["mix"])  # (pieces, N)
            for kind in ("mix", "separated", "path", "irm"):
                gain = torch.tensor(scores[kind]) - anchor
                per_source = gain.mean(dim=0).tolist()
                sdr_cells = ([median([row[k] for row in sdrs[kind]]) for k in
                              range(len(sources))] if have_sdr else [float("nan")] * len(sources))
                rtf = compute / audio_seconds if kind == "separated" else None
                rows.append({"model": model, "method": separator.method, "estimate": kind,
                             "si_sdri": dict(zip(sources, per_source)),
                             "si_sdr": dict(zip(sources, torch.tensor(scores[kind])
                                                .mean(dim=0).tolist())),
                             "sdr_median": dict(zip(sources, sdr_cells)) if have_sdr else None,
                             "rtf": rtf})
                name = {"mix": "mix (lower anchor)", "separated": "separated",
                        "path": "oracle: truth through the path",
                        "irm": "oracle: ideal ratio mask"}[kind]
                print(f"| {label} | {name} | " + " | ".join(f"{v:+.2f}" for v in per_source)
                      + f" | {gain.mean():+.2f} | "
                      + " | ".join(f"{v:+.2f}" if have_sdr else "n/a" for v in sdr_cells)
                      + f" | {'' if rtf is None else f'{rtf:.2f}'} |", flush=True)
            mix_si_sdr = anchor.mean(dim=0).tolist()
            print("(mix SI-SDR: " + ", ".join(f"{s} {v:+.2f}" for s, v in
                                               zip(sources, mix_si_sdr)) + ")")
    if not have_sdr:
        print("SDR skipped: fast-bss-eval is not installed (pip install 'priorsep[eval]')",
              file=sys.stderr)
    if args.json_path:
        with open(args.json_path, "w") as handle:
            json.dump({"split": args.split, "pieces": args.pieces, "offset": args.offset,
                       "seconds": args.seconds, "sdr": "fast-bss-eval" if have_sdr else None,
                       "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
