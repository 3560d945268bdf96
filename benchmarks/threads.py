"""How `priorsep separate --jobs` (torch threads) changes the speed of separation.

Separates the same toy mixes with each thread count in one process, after a warm-up, and prints
the wall time, the real-time factor and the ratio to one thread. Run it on an idle machine and
again while another heavy job keeps a core busy (for example a training run), to see what a
thread that has to share a core costs.

    python benchmarks/threads.py --model toy-score --threads 1,2 --seconds 2
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from priorsep.api import Separator
from priorsep.data.toy import ToyDataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="toy-score")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--seconds", type=float, default=2.0, help="audio per run")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    separator = Separator.from_pretrained(args.model)
    rate = separator.sample_rate
    length = int(args.seconds * rate)
    sources = ToyDataset("test", 1, rate, duration=args.seconds).batch([0])[0]
    mix = separator.mixing(sources[None])  # (1, time): one channel
    print(f"# {args.model}, {args.seconds:g} s of toy audio, method {separator.method}, "
          f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
          f"torch {torch.__version__}, default threads {torch.get_num_threads()}")
    print(f"| threads | seconds (best of {args.repeats}) | real-time factor | vs 1 thread |")
    print("|---|---|---|---|")
    separator.separate_audio(mix[:, : rate // 4], rate)  # warm-up
    base = None
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        best = float("inf")
        for _ in range(args.repeats):
            began = time.perf_counter()
            separator.separate_audio(mix[:, :length], rate)
            best = min(best, time.perf_counter() - began)
        base = base or best
        print(f"| {threads} | {best:.2f} | {best / args.seconds:.2f} | {best / base:.2f}x |",
              flush=True)


if __name__ == "__main__":
    main()
