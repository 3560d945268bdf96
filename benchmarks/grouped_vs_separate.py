"""Grouped (one module, groups=N convolutions) vs separate (N modules) source priors on CPU.

Measures forward+backward+Adam throughput in audio samples per second (all sources counted)
for the 4 toy priors, both layouts timed alternately in one run so the ratio is fair, and the
inference-only forward (the cost that dominates Langevin separation).

    python benchmarks/grouped_vs_separate.py [--threads 2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from priorsep.config import FlowConfig, ModelConfig
from priorsep.nn.prior import SourcePriors


def time_alternately(calls: dict, repeats: int) -> dict:
    """Median seconds per call, the calls interleaved so machine load hits all of them alike."""
    for fn in calls.values():
        fn()  # warm-up
    times: dict = {key: [] for key in calls}
    for _ in range(repeats):
        for key, fn in calls.items():
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    return {key: statistics.median(values) for key, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--crop-length", type=int, default=4096)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    flows = {
        "default (8-sample groups, 2x3x5, width 24)": FlowConfig(),
        "no early squeeze (3x4x6, width 32)": FlowConfig(n_blocks=3, early_squeezes=0,
                                                         n_flows=4, n_layers=6,
                                                         residual_channels=32, skip_channels=32),
        "thesis toy size (4x6x10, width 32)": FlowConfig(n_blocks=4, early_squeezes=0,
                                                                 n_flows=6, n_layers=10,
                                                                 residual_channels=32,
                                                                 skip_channels=32),
    }
    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch_size} x 4 "
          f"sources x {args.crop_length} samples")
    print("| architecture | layout | train samples/s | inference samples/s |")
    print("|---|---|---|---|")
    for label, flow in flows.items():
        calls = {}
        for grouped in (True, False):
            torch.manual_seed(0)
            priors = SourcePriors(ModelConfig(architecture=flow, grouped=grouped))
            optimizer = torch.optim.Adam(priors.parameters(), lr=1e-4)
            x = torch.randn(args.batch_size, 4, args.crop_length) * 0.5
            priors.train()
            with torch.no_grad():
                priors(x)

            def step(priors=priors, optimizer=optimizer, x=x):
                loss = -priors.log_prob(x).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

            def infer(priors=priors, x=x):
                with torch.inference_mode():
                    priors.log_prob(x)

            calls[grouped, "train"] = step
            calls[grouped, "infer"] = infer
        seconds = time_alternately(calls, args.repeats)
        results = {g: (seconds[g, "train"], seconds[g, "infer"]) for g in (True, False)}
        samples = args.batch_size * 4 * args.crop_length
        for grouped, (train_s, infer_s) in results.items():
            layout = "grouped" if grouped else "separate"
            print(f"| {label} | {layout} | {samples / train_s:,.0f} | {samples / infer_s:,.0f} |")
        ratio_train = results[False][0] / results[True][0]
        ratio_infer = results[False][1] / results[True][1]
        print(f"| {label} | grouped speed-up | x{ratio_train:.2f} | x{ratio_infer:.2f} |")


if __name__ == "__main__":
    main()
