"""Speed of the autoregressive WaveNet family: sampling with cached activations, and training
throughput beside the other families, measured in one run (compare the ratios).

    python benchmarks/wavenet_speed.py --seconds 1 --threads 2

Sampling: `--seconds` of audio at 16 kHz from the shipped size (`--model`, default: a fresh
`WaveNetConfig()`, weights do not change the cost), for a one-source model and for the grouped
four-source toy model (all four sources in one pass), plus the uncached path (every step
recomputes the whole history) on a short excerpt for the speed-up of the queues. Training:
audio samples (all sources) per second of `training_loss` + backward + Adam for each family at
its default size, batch `--batch` x `--frame`.
"""

from __future__ import annotations

import argparse
import time

import torch

from priorsep.config import FlowConfig, ModelConfig, ScoreConfig, TrainConfig, WaveNetConfig
from priorsep.nn.registry import build_priors


def sampling_seconds(priors, length: int) -> float:
    started = time.perf_counter()
    priors.sample(1, length, 0.0, generator=torch.Generator().manual_seed(0))
    return time.perf_counter() - started


def training_rate(config: ModelConfig, batch: int, frame: int, steps: int) -> float:
    torch.manual_seed(0)
    priors = build_priors(config)
    optimiser = torch.optim.Adam(priors.parameters(), 1e-4)
    generator = torch.Generator().manual_seed(0)
    clean = torch.rand(batch, len(config.sources), frame, generator=generator) * 1.6 - 0.8
    train_config = TrainConfig(draw_sigma_min=0.005, draw_sigma_max=2.0)
    priors.prepare(clean)
    elapsed = 0.0
    for step in range(steps + 1):
        started = time.perf_counter()
        loss = priors.training_loss(priors, clean, generator, train_config)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step:  # the first step warms up allocations
            elapsed += time.perf_counter() - started
    return clean.numel() * steps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", default=None, help="a WaveNet model id (default: fresh)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--frame", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.model:
        from priorsep.api import load_pretrained

        grouped = load_pretrained(args.model)[0].eval()
        arch = grouped.config.architecture
    else:
        arch = WaveNetConfig()
        grouped = build_priors(ModelConfig(architecture=arch)).eval()
    single = build_priors(ModelConfig(sources=("source",), architecture=arch)).eval()
    length = int(args.seconds * 16000)
    print(f"threads {args.threads}; {grouped.summary()}; "
          f"{sum(p.numel() for p in grouped.parameters()):,} parameters (4 sources)")
    one = sampling_seconds(single, length)
    four = sampling_seconds(grouped, length)
    short = 200
    cached = sampling_seconds(grouped, short)
    started = time.perf_counter()
    grouped.sample(1, short, 0.0, generator=torch.Generator().manual_seed(0), cached=False)
    uncached = time.perf_counter() - started
    print(f"sampling {args.seconds:g} s at 16 kHz: one source {one:.1f} s "
          f"(real-time factor {one / args.seconds:.1f}); four sources in one grouped pass "
          f"{four:.1f} s; {short} samples uncached / cached: {uncached / cached:.1f}x")
    families = {"wavenet": arch, "flowavenet": FlowConfig(), "score (hybrid)": ScoreConfig(
        segment_length=args.frame)}
    rates = {name: training_rate(ModelConfig(architecture=config), args.batch, args.frame,
                                 args.steps) for name, config in families.items()}
    print(f"training, batch {args.batch} x {args.frame}, audio samples (4 sources) per second:")
    for name, rate in rates.items():
        print(f"  {name:15s} {rate:9,.0f}  ({rate / rates['wavenet']:.2f}x the WaveNet)")


if __name__ == "__main__":
    main()
