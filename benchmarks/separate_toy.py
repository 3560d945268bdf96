"""Separation quality, speed and score diagnostics on held-out toy mixes, for every prior family.

For each setting: SI-SDR of every source estimate, its improvement over the mix itself (the
lower anchor), and the real-time factor (seconds of compute per second of audio, all sources).
Diagnostics keep the failure modes apart: `oracle` chains start at the true sources (does the
sampler keep them? tests the score near the truth), `cold` chains start from the setting's own
initialisation (does the search find them?), and `halfway` chains start midway between the truth
and the mix in every slot (does the score pull towards the truth from there, or away?). For
the diffusion sampler the oracle and halfway starts are noised at `--start-sigma` and the
schedule runs from there.

Score diagnostics (every family, from `priorsep.evaluation.diagnostics`): the Tweedie gain of each
source's own prior per noise level, the cross-denoising matrix (source j's data denoised by
prior k; the own prior should win), the mix response (what each prior makes of the mix it
finds in its slot at the start of separation: its own source at full level, the others
dropped?), and loudness / spectral concentration of unconditional samples against real data.

    python benchmarks/separate_toy.py --model toy --n-mixes 100 --split test \
        --settings default --settings "method=diffusion,steps=20,churn=5" \
        --settings "method=langevin,steps=100" --settings "method=posterior"

A setting is `default` (the model's stored settings) or comma-separated overrides:
`method=langevin|diffusion|posterior|posterior+langevin`, `samples=K` (posterior draws),
`steps=N` (score evaluations: Langevin spreads them over its levels, diffusion takes N steps),
and any field of LangevinConfig or DiffusionConfig for the chosen method. `--checkpoint
RUN/checkpoint.pt` evaluates a training run in progress. Tune on `--split validation`
(`--write-best` stores the best cold setting in the model folder's separation.json); report on
`--split test`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

import torch

from priorsep.amortised import elbo
from priorsep.api import Separator
from priorsep.config import DiffusionConfig, ExtractConfig, LangevinConfig, ModelConfig, from_dict
from priorsep.data.toy import ToyDataset
from priorsep.evaluation.diagnostics import (
    assignment_accuracy,
    cross_denoising,
    full_scale_response,
    mix_response,
    sample_statistics,
    tweedie_table,
)
from priorsep.metrics import si_sdr
from priorsep.nn.posterior import TruncatedNormal
from priorsep.nn.registry import build_priors
from priorsep.separation.diffusion import diffusion_separate
from priorsep.separation.langevin import langevin_separate
from priorsep.storage import read_separation, write_separation


def parse_setting(text: str, separator: Separator) -> tuple[str, int, dict]:
    """(method, posterior samples, sampler overrides) of a setting."""
    method, samples = separator.method, 0
    values: dict = {}
    if text == "default":
        return method, samples, values
    for item in text.split(","):
        key, value = (part.strip() for part in item.split("="))
        if key == "method":
            method = value
        elif key == "samples":
            samples = int(value)
        else:
            values[key] = value
    config_class = DiffusionConfig if method == "diffusion" else LangevinConfig
    types = {f.name: str(f.type) for f in dataclasses.fields(config_class)}
    if method == "extract":  # its own fields, the others its refinement sampler's
        refine = values.get("refine", separator.settings["extract"].refine)
        types = {f.name: str(f.type) for f in dataclasses.fields(
            DiffusionConfig if refine == "diffusion" else LangevinConfig)}
        types.update({f.name: str(f.type) for f in dataclasses.fields(ExtractConfig)})
    parsed: dict = {}
    for key, value in values.items():
        kind = "int" if key == "steps" else types.get(key)
        if kind is None:
            raise SystemExit(f"{key} is not a field of {config_class.__name__}"
                             + (" or ExtractConfig" if method == "extract" else ""))
        if value == "none":
            parsed[key] = None
        elif kind.startswith("int"):
            parsed[key] = int(value)
        elif kind.startswith("bool"):
            parsed[key] = value.lower() in ("1", "true", "yes")
        elif kind.startswith("str"):
            parsed[key] = value
        else:
            parsed[key] = float(value)
    return method, samples, parsed


def evaluate(separator: Separator, mixes: torch.Tensor, truth: torch.Tensor, start: str,
             batch_size: int, start_sigma: float) -> dict:
    """SI-SDR (n, N) of the estimates and the compute seconds spent.

    `start`: "cold" (the setting's own initialisation), "oracle" (the true sources) or
    "halfway" (the mean of the true sources and the mix in every slot).
    """
    estimates = []
    started = time.perf_counter()
    for first in range(0, mixes.shape[0], batch_size):
        chunk = mixes[first:first + batch_size]
        if start == "cold":
            estimates.append(separator.separate_tensor(chunk))
            continue
        initial = truth[first:first + batch_size]
        if start == "halfway":
            initial = 0.5 * (initial + separator.mixing.least_norm_sources(chunk, initial.shape[1]))
        if separator.method == "diffusion":
            diffusion = separator.settings["diffusion"]
            config = dataclasses.replace(diffusion,
                                         sigma_max=min(start_sigma, diffusion.sigma_max))
            result = diffusion_separate(separator.priors, chunk, separator.mixing, config,
                                        initial=initial)
        else:
            result = langevin_separate(separator.priors, chunk, separator.mixing,
                                       separator.settings["langevin"], initial=initial)
        estimates.append(result.sources)
    seconds = time.perf_counter() - started
    estimates = torch.cat(estimates)
    return {"si_sdr": si_sdr(estimates, truth), "seconds": seconds,
            "assignment": assignment_accuracy(estimates, truth)}


def print_matrix(title: str, sources, table) -> None:
    print(title)
    print("| data \\ prior | " + " | ".join(sources) + " |")
    print("|" + "---|" * (len(sources) + 1))
    for j, source in enumerate(sources):
        row = [f"**{v:+.1f}**" if k == j else f"{v:+.1f}" for k, v in enumerate(table[j])]
        print(f"| {source} | " + " | ".join(row) + " |")
    print()


def print_gains(title: str, sources, table) -> None:
    print(title)
    print("| prior \\ source | " + " | ".join(sources) + " |")
    print("|" + "---|" * (len(sources) + 1))
    for k, source in enumerate(sources):
        print(f"| {source} | " + " | ".join(f"{v:.2f}" for v in table[k]) + " |")
    print()


def score_diagnostics(priors, truth: torch.Tensor, sigmas: list[float],
                      cross_sigmas: list[float], n_samples: int, mixing,
                      full_scale_sigmas: list[float] = ()) -> dict:
    """Tweedie gains, cross-denoising matrices and sample statistics, printed and returned."""
    sources = priors.sources
    quality = tweedie_table(priors, truth, sigmas)
    print("score quality: Tweedie gain of each source's own prior, dB")
    print("| sigma | " + " | ".join(sources) + " |")
    print("|" + "---|" * (len(sources) + 1))
    for row in quality:
        print(f"| {row['sigma']} | " + " | ".join(f"{v:+.1f}" for v in row["gain_db"]) + " |")
    print()
    cross = {}
    for sigma in cross_sigmas:
        table = cross_denoising(priors, truth, sigma)
        cross[sigma] = table.tolist()
        margin = min(table[j, j] - max(table[j, k] for k in range(len(sources)) if k != j)
                     for j in range(len(sources))) if len(sources) > 1 else 0.0
        print_matrix(f"cross-denoising at sigma = {sigma} (gain dB; smallest margin of the own "
                     f"prior over the best other: {margin:+.1f} dB)", sources, table)
    response = {}
    for sigma in cross_sigmas:
        table = mix_response(priors, truth, mixing, sigma)
        response[sigma] = table.tolist()
        print_gains(f"mix response at sigma = {sigma}: gain of each true source (columns) in "
                    "what each prior (rows) makes of the mix in its slot; the mix holds every "
                    f"source at {float(mixing.weights(len(sources))[0]):.2f}, separating priors "
                    "show 1 on the diagonal and 0 elsewhere", sources, table)
    full_scale = {}
    for sigma in full_scale_sigmas:
        found = full_scale_response(priors, truth, mixing, sigma)
        full_scale[sigma] = {"gains": found.gains.tolist(), "top": found.top.tolist(),
                             "rest": found.rest.tolist()}
        print_gains(f"full-scale response at sigma = {sigma}: mean gain of each true source "
                    "(columns) in what each prior (rows) extracts from the whole mix (every "
                    "source at its own level)", sources, found.gains)
        print("per example, the largest |gain| of each prior's extraction and the sum of the "
              "others (exclusive: 1 and 0): " + ", ".join(
                  f"{s} {t:.2f} / {r:.2f}" for s, t, r in zip(sources, found.top.tolist(),
                                                               found.rest.tolist())) + "\n")
    statistics = None
    if n_samples:
        length = truth.shape[-1]
        if priors.segment_length:
            length = min(length, priors.segment_length)
        generator = torch.Generator().manual_seed(0)
        started = time.perf_counter()
        samples = priors.sample(n_samples, length, generator=generator)
        seconds = time.perf_counter() - started
        statistics = sample_statistics(samples, truth[:, :, :samples.shape[-1]])
        statistics["seconds"] = seconds
        print(f"unconditional samples ({n_samples} x {samples.shape[-1]} samples, {seconds:.1f} s)"
              f": RMS and share of energy in the {statistics['peaks']} strongest bins")
        print("| | " + " | ".join(sources) + " |")
        print("|" + "---|" * (len(sources) + 1))
        for key in ("rms", "concentration"):
            for who in ("samples", "real"):
                print(f"| {key} {who} | "
                      + " | ".join(f"{v:.3f}" for v in statistics[key][who]) + " |")
        print()
    return {"tweedie": quality, "cross_denoising": cross, "mix_response": response,
            "full_scale_response": full_scale, "samples": statistics}


class TruthCentred(torch.nn.Module):
    """Stands in for an encoder: a truncated normal of deviation `scale` around `sources`."""

    def __init__(self, config, sources: torch.Tensor, scale: float) -> None:
        super().__init__()
        self.config, self.n_sources = config, sources.shape[1]
        self.sources, self.scale = sources, scale

    def forward(self, mix: torch.Tensor, init: torch.Tensor) -> TruncatedNormal:
        return TruncatedNormal(self.sources.clamp(-0.999, 0.999),
                               torch.full_like(self.sources, self.scale))


@torch.no_grad()
def elbo_diagnostic(separator: Separator, mixes: torch.Tensor, truth: torch.Tensor,
                    batch_size: int) -> dict:
    """ELBO (nats per mix sample) of the trained encoder against that of a posterior centred on
    the true sources (a truncated normal around every true sample, deviation the encoder's sigma).

    If the truth scores higher, the priors prefer the true sources and the encoder failed to
    find them (an optimisation or amortisation gap); if the encoder scores higher, the priors
    themselves prefer wrong sources and no encoder can do better with them.
    """
    encoder = separator.encoder
    scale = max(encoder.config.sigma, 1e-3)
    generator = torch.Generator().manual_seed(0)
    found, centred = 0.0, 0.0
    for first in range(0, mixes.shape[0], batch_size):
        chunk, sources = mixes[first:first + batch_size], truth[first:first + batch_size]
        found += elbo(separator.priors, encoder, chunk, separator.mixing, generator).sum().item()
        oracle = TruthCentred(encoder.config, sources, scale)
        centred += elbo(separator.priors, oracle, chunk, separator.mixing, generator).sum().item()
    return {"encoder": found / mixes.numel(), "truth_centred": centred / mixes.numel()}


def summary(name: str, scores: torch.Tensor, anchor: torch.Tensor, sources, rtf: float) -> dict:
    gain = scores - anchor
    per_source = {
        source: {"si_sdr_mean": scores[:, k].mean().item(),
                 "si_sdr_median": scores[:, k].median().item(),
                 "improvement_mean": gain[:, k].mean().item()}
        for k, source in enumerate(sources)}
    return {"setting": name, "per_source": per_source,
            "improvement_mean": gain.mean().item(), "si_sdr_mean": scores.mean().item(),
            "rtf": rtf}


def load_separator(args) -> Separator:
    """The model by id, or the weights of a training checkpoint."""
    if args.checkpoint:
        checkpoint = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
        priors = build_priors(ModelConfig.from_dict(checkpoint["model_config"]))
        priors.load_state_dict(checkpoint["model"])
        print(f"# checkpoint {args.checkpoint}: step {checkpoint['step']}, "
              f"{checkpoint['elapsed'] / 3600:.2f} h of training", file=sys.stderr)
        return Separator(priors.eval())
    return Separator.from_pretrained(args.model, method=args.method)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="toy")
    parser.add_argument("--checkpoint", default=None, help="a training checkpoint instead")
    parser.add_argument("--method", default=None,
                        help="load with this method (posterior methods load the encoder)")
    parser.add_argument("--split", default="test", choices=["test", "validation"])
    parser.add_argument("--n-mixes", type=int, default=100)
    parser.add_argument("--length", type=int, default=16000, help="samples per mix")
    parser.add_argument("--settings", action="append", default=None)
    parser.add_argument("--diagnostics", default="cold,oracle",
                        help="comma-separated: cold (real use), oracle (start at the truth), "
                        "halfway (midway between the truth and the mix)")
    parser.add_argument("--start-sigma", type=float, default=0.3,
                        help="diffusion: noise level of the oracle and halfway starts")
    parser.add_argument("--score-sigmas", default="0.03,0.1,0.3,1.0",
                        help="noise levels of the Tweedie score-quality table ('' to skip)")
    parser.add_argument("--cross-sigmas", default="0.1,0.3",
                        help="noise levels of the cross-denoising matrices ('' to skip)")
    parser.add_argument("--full-scale-sigmas", default="2.0",
                        help="noise levels of the full-scale response ('' to skip)")
    parser.add_argument("--score-examples", type=int, default=32,
                        help="held-out examples per source for the score diagnostics")
    parser.add_argument("--samples", type=int, default=8,
                        help="unconditional samples per source (0 to skip)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", dest="json_path", default=None)
    parser.add_argument("--write-best", metavar="MODEL_FOLDER", default=None,
                        help="store the best cold-start setting within --max-rtf as the "
                             "model's separation defaults (tune on --split validation)")
    parser.add_argument("--max-rtf", type=float, default=20.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    settings = args.settings or ["default"]
    separator = load_separator(args)
    separator.batch_size = args.batch_size
    multiple = separator.multiple
    length = args.length // multiple * multiple
    data = ToyDataset(args.split, max(args.n_mixes, args.score_examples), separator.sample_rate)
    everything = data.batch(range(max(args.n_mixes, args.score_examples)))
    truth = everything[:args.n_mixes, :, :length]
    mixes = separator.mixing(truth)  # (n, time): the model's own mixing (the toy's: mean)
    anchor = si_sdr(mixes[:, None].expand_as(truth), truth)
    audio_seconds = args.n_mixes * length / separator.sample_rate
    sources = separator.sources
    print(f"# {args.n_mixes} {args.split} mixes x {length} samples, model "
          f"{args.checkpoint or args.model} ({separator.priors.config.family}), "
          f"torch {torch.__version__}, {args.threads} threads", file=sys.stderr)
    print(f"mix itself (lower anchor): SI-SDR {anchor.mean():.2f} dB "
          + " ".join(f"{s} {anchor[:, k].mean():.2f}" for k, s in enumerate(sources)) + "\n")
    diagnostics = None
    if args.score_sigmas or args.cross_sigmas or args.samples:
        segment = separator.segment_length
        score_truth = everything[:args.score_examples, :, :segment]
        diagnostics = score_diagnostics(
            separator.priors, score_truth,
            [float(v) for v in args.score_sigmas.split(",") if v],
            [float(v) for v in args.cross_sigmas.split(",") if v], args.samples,
            separator.mixing, [float(v) for v in args.full_scale_sigmas.split(",") if v])
    diagnostic_elbo = None
    if separator.encoder is not None:
        diagnostic_elbo = elbo_diagnostic(separator, mixes, truth, args.batch_size)
        print(f"ELBO (nats per mix sample): encoder {diagnostic_elbo['encoder']:+.3f}, "
              f"a posterior centred on the true sources {diagnostic_elbo['truth_centred']:+.3f}"
              "\n")
    header = ("| setting | start | evaluations | "
              + " | ".join(f"{s} SI-SDRi" for s in sources)
              + " | mean SI-SDRi | mean SI-SDR | > 10 dB | assigned | RTF |")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    results = []
    base = separator.settings
    for text in settings:
        separator.settings = base
        method, samples, overrides = parse_setting(text, separator)
        separator.settings = dataclasses.replace(base, method=method)
        separator.samples = samples
        separator.configure(**overrides)
        for diagnostic in args.diagnostics.split(","):
            if diagnostic not in ("cold", "oracle", "halfway"):
                raise SystemExit(f"unknown diagnostic {diagnostic!r}")
            if diagnostic != "cold" and method not in ("langevin", "diffusion"):
                continue
            outcome = evaluate(separator, mixes, truth, diagnostic, args.batch_size,
                               args.start_sigma)
            rtf = outcome["seconds"] / audio_seconds
            row = summary(text, outcome["si_sdr"], anchor, sources, rtf)
            row["assignment"] = outcome["assignment"]
            row["above_10_db"] = int((outcome["si_sdr"] > 10).sum())
            config = separator.settings[method if method in ("diffusion", "extract")
                                        else "langevin"]
            evaluations = separator.evaluations_per_segment
            row.update(start=diagnostic, evaluations=evaluations, method=method,
                       config=dataclasses.asdict(config))
            results.append(row)
            cells = " | ".join(f"{row['per_source'][s]['improvement_mean']:+.2f}"
                               for s in sources)
            print(f"| {text} | {diagnostic} | {evaluations} | {cells} | "
                  f"{row['improvement_mean']:+.2f} | {row['si_sdr_mean']:+.2f} | "
                  f"{row['above_10_db']}/{outcome['si_sdr'].numel()} | "
                  f"{row['assignment']:.0%} | {rtf:.2f} |", flush=True)
    if args.write_best:
        eligible = [row for row in results if row["start"] == "cold" and
                    row["method"] in ("langevin", "diffusion") and row["rtf"] <= args.max_rtf]
        if not eligible:
            raise SystemExit(f"no cold-start sampler setting ran within RTF {args.max_rtf}")
        best = max(eligible, key=lambda row: row["improvement_mean"])
        settings_now = read_separation(args.write_best)
        chosen = {"method": best["method"]}
        chosen[best["method"]] = (from_dict(DiffusionConfig, best["config"])
                                  if best["method"] == "diffusion"
                                  else from_dict(LangevinConfig, best["config"]))
        write_separation(args.write_best, dataclasses.replace(settings_now, **chosen), {
            "tuned on": f"{args.n_mixes} {args.split} mixes of {length} samples",
            "setting": best["setting"],
            "mean SI-SDRi (dB)": round(best["improvement_mean"], 2),
            "real-time factor": round(best["rtf"], 2)})
        print(f"stored {best['setting']!r} (mean SI-SDRi {best['improvement_mean']:+.2f} dB on "
              f"{args.split}, RTF {best['rtf']:.1f}) in {args.write_best}", file=sys.stderr)
    if args.json_path:
        with open(args.json_path, "w") as handle:
            json.dump({"split": args.split, "n_mixes": args.n_mixes, "length": length,
                       "anchor_si_sdr": anchor.mean().item(), "diagnostics": diagnostics,
                       "elbo": diagnostic_elbo, "results": results}, handle, indent=2)


if __name__ == "__main__":
    main()
