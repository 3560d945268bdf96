"""Separation quality and speed on held-out toy mixes.

For each setting: SI-SDR of every source estimate, its improvement over the mix itself (the
lower anchor), and the real-time factor (seconds of compute per second of audio, all sources).
Diagnostics keep the failure modes apart: `oracle` chains start at the true sources (does the
posterior keep them? tests the score near the truth), `cold` chains start from the setting's own
initialisation (does the search find them?), and `halfway` chains start midway between the truth
and the mix in every slot (does the score pull towards the truth from there, or away?).

    python benchmarks/separate_toy.py --model toy --n-mixes 100 --split test \
        --settings default --settings "steps=100" --settings "mode=fixed" \
        --settings "method=posterior" --settings "method=posterior+langevin,steps=25"

A setting is `default` or comma-separated LangevinConfig overrides (`steps=N` spreads N steps
over the levels), plus `method=langevin|posterior|posterior+langevin` and `samples=K` (the
posterior methods need a model with an amortised posterior; the oracle and halfway starts
apply to Langevin only). Tune on `--split validation`; report on `--split test`.
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
from priorsep.config import LangevinConfig
from priorsep.data.toy import ToyDataset, mix
from priorsep.metrics import si_sdr
from priorsep.nn.posterior import TruncatedNormal
from priorsep.separation.langevin import langevin_separate, prior_gradient
from priorsep.storage import update_info


def parse_setting(text: str, base: LangevinConfig) -> tuple[str, int, LangevinConfig]:
    """(method, posterior samples, sampler settings) of a setting."""
    method, samples = "langevin", 0
    if text == "default":
        return method, samples, base
    values: dict = {}
    for item in text.split(","):
        key, value = item.split("=")
        key = key.strip()
        if key == "method":
            method = value
            continue
        if key == "samples":
            samples = int(value)
            continue
        if key == "steps":
            total = int(value)
            levels = min(values.get("n_levels", base.n_levels), total)
            values.update(n_levels=levels, steps_per_level=max(total // levels, 1))
            continue
        field_type = {f.name: f.type for f in dataclasses.fields(LangevinConfig)}[key]
        if "int" in str(field_type) and "float" not in str(field_type):
            values[key] = int(value)
        elif "bool" in str(field_type):
            values[key] = value.lower() in ("1", "true", "yes")
        elif "str" in str(field_type) and "float" not in str(field_type):
            values[key] = value
        else:
            values[key] = None if value == "none" else float(value)
    return method, samples, dataclasses.replace(base, **values)


def evaluate(separator: Separator, mixes: torch.Tensor, truth: torch.Tensor,
             config: LangevinConfig, start: str, batch_size: int) -> dict:
    """SI-SDR (n, N) of the estimates and the compute seconds spent.

    `start`: "cold" (the setting's own initialisation), "oracle" (the true sources) or
    "halfway" (the mean of the true sources and the mix in every slot).
    """
    separator.langevin = config
    estimates = []
    started = time.perf_counter()
    for first in range(0, mixes.shape[0], batch_size):
        chunk = mixes[first:first + batch_size]
        if start != "cold":
            initial = truth[first:first + batch_size]
            if start == "halfway":
                initial = 0.5 * (initial + chunk[:, None, :].expand_as(initial))
            result = langevin_separate(separator.priors, chunk, separator.mixing, config,
                                       initial=initial)
            estimates.append(result.sources)
        else:
            estimates.append(separator.separate_tensor(chunk))
    seconds = time.perf_counter() - started
    return {"si_sdr": si_sdr(torch.cat(estimates), truth), "seconds": seconds}


def score_quality(separator: Separator, truth: torch.Tensor, sigmas: list[float],
                  seed: int = 0) -> list[dict]:
    """How useful each prior's score is at each noise level: Tweedie denoising gain.

    For x + sigma * eps, `x_hat = y + sigma**2 * grad log p_sigma(y)` is the posterior mean
    when p_sigma is exact; a good prior denoises a lot, a weak one barely (or makes it worse).
    """
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for sigma in sigmas:
        noisy = truth + sigma * torch.randn(truth.shape, generator=generator)
        _, gradient = prior_gradient(separator.priors, noisy, sigma)
        denoised = noisy + sigma**2 * gradient
        gain = (si_sdr(denoised, truth) - si_sdr(noisy, truth)).mean(dim=0)
        rows.append({"sigma": sigma, "gain_db": gain.tolist()})
    return rows


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="toy")
    parser.add_argument("--split", default="test", choices=["test", "validation"])
    parser.add_argument("--n-mixes", type=int, default=100)
    parser.add_argument("--length", type=int, default=16000, help="samples per mix")
    parser.add_argument("--settings", action="append", default=None)
    parser.add_argument("--diagnostics", default="cold,oracle",
                        help="comma-separated: cold (real use), oracle (start at the truth), "
                        "halfway (midway between the truth and the mix)")
    parser.add_argument("--score-sigmas", default="0.01,0.03,0.1,0.3,1.0",
                        help="noise levels of the Tweedie score-quality table ('' to skip)")
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
    needs_encoder = any("method=posterior" in text for text in settings)
    separator = Separator.from_pretrained(args.model,
                                          method="posterior" if needs_encoder else "langevin")
    separator.batch_size = args.batch_size
    multiple = separator.multiple
    length = args.length // multiple * multiple
    separator.segment_length = max(separator.segment_length, length)
    data = ToyDataset(args.split, args.n_mixes, separator.sample_rate)
    truth = data.batch(range(args.n_mixes))[..., :length]
    mixes = mix(truth)
    anchor = si_sdr(mixes[:, None].expand_as(truth), truth)
    audio_seconds = args.n_mixes * length / separator.sample_rate
    sources = separator.sources
    print(f"# {args.n_mixes} {args.split} mixes x {length} samples, model {args.model}, "
          f"torch {torch.__version__}, {args.threads} threads", file=sys.stderr)
    print(f"mix itself (lower anchor): SI-SDR {anchor.mean():.2f} dB "
          + " ".join(f"{s} {anchor[:, k].mean():.2f}" for k, s in enumerate(sources)))
    quality = []
    if args.score_sigmas:
        quality = score_quality(separator, truth[:16], [float(v) for v in
                                                        args.score_sigmas.split(",")])
        print("\nscore quality: Tweedie denoising gain in dB (x + sigma eps -> posterior mean)")
        print("| sigma | " + " | ".join(sources) + " |")
        print("|" + "---|" * (len(sources) + 1))
        for row in quality:
            print(f"| {row['sigma']} | " + " | ".join(f"{v:+.1f}" for v in row["gain_db"])
                  + " |")
        print()
    diagnostic_elbo = None
    if needs_encoder:
        diagnostic_elbo = elbo_diagnostic(separator, mixes, truth, args.batch_size)
        print(f"ELBO (nats per mix sample): encoder {diagnostic_elbo['encoder']:+.3f}, "
              f"a posterior centred on the true sources {diagnostic_elbo['truth_centred']:+.3f}"
              "\n")
    header = ("| setting | start | Langevin steps | " + " | ".join(f"{s} SI-SDRi" for s in sources)
              + " | mean SI-SDRi | mean SI-SDR | RTF |")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    results = []
    base = separator.langevin  # the model's stored defaults; every setting starts from them
    for text in settings:
        method, samples, config = parse_setting(text, base)
        separator.method, separator.samples = method, samples
        for diagnostic in args.diagnostics.split(","):
            if diagnostic not in ("cold", "oracle", "halfway"):
                raise SystemExit(f"unknown diagnostic {diagnostic!r}")
            if diagnostic != "cold" and method != "langevin":
                continue
            outcome = evaluate(separator, mixes, truth, config, diagnostic, args.batch_size)
            rtf = outcome["seconds"] / audio_seconds
            row = summary(text, outcome["si_sdr"], anchor, sources, rtf)
            steps = 0 if method == "posterior" else config.total_steps
            row.update(start=diagnostic, steps=steps, method=method,
                       config=dataclasses.asdict(config))
            results.append(row)
            cells = " | ".join(f"{row['per_source'][s]['improvement_mean']:+.2f}"
                               for s in sources)
            print(f"| {text} | {diagnostic} | {steps} | {cells} | "
                  f"{row['improvement_mean']:+.2f} | {row['si_sdr_mean']:+.2f} | {rtf:.2f} |",
                  flush=True)
    if args.write_best:
        eligible = [row for row in results if row["start"] == "cold" and
                    row["method"] == "langevin" and row["rtf"] <= args.max_rtf]
        if not eligible:
            raise SystemExit(f"no cold-start Langevin setting ran within RTF {args.max_rtf}")
        best = max(eligible, key=lambda row: row["improvement_mean"])
        update_info(args.write_best, "separation", best["config"])
        print(f"stored {best['setting']!r} (mean SI-SDRi {best['improvement_mean']:+.2f} dB on "
              f"{args.split}, RTF {best['rtf']:.1f}) in {args.write_best}", file=sys.stderr)
    if args.json_path:
        with open(args.json_path, "w") as handle:
            json.dump({"split": args.split, "n_mixes": args.n_mixes, "length": length,
                       "anchor_si_sdr": anchor.mean().item(), "score_quality": quality,
                       "elbo": diagnostic_elbo,
                       "results": results}, handle,
                      indent=2)


if __name__ == "__main__":
    main()
