"""Separation of the mixes users bring, not only the training one: any level, any balance of
the sources, any subset of them, and a class trained on its own added to a model.

On one split of the toy data, in one run, through `Separator` as `priorsep separate` uses it
(the model's stored settings), each condition on its own mixes drawn from a fixed seed:
- `plain`: the four sources at their drawn amplitudes, the mean (the training kind of mix);
- `level`: the same mixes, each scaled by a factor log-uniform in [0.05, 2] (paired with
  `plain`: the difference is what the level costs);
- `gains`: each source scaled by its own gain uniform in [0.1, 1] before mixing;
- `subsets`: every non-empty subset of the four classes in turn (15 of them), the others
  silent: the present sources' SI-SDR improvement where two or more are present (a lone
  source is the mix itself, so its improvement is undefined: its SI-SDR is reported), and
  the energy each absent slot holds, in dB of the mix's energy (a silent slot counts as
  -120 dB in the mean);
- `five`: the four and a fifth class, a pulse wave of 25 % duty cycle (`priorsep.data.toy`),
  separated by the model combined with a prior trained on pulse solos alone (`--fifth`, or
  trained here first from 200 generated one-second solos through `priorsep train`).

Every row gives the mean SI-SDR improvement, the share of sources above 10 dB, the worst
source, and the real-time factor (seconds of compute per second of audio).

    python benchmarks/separate_any.py --model toy --split test --n-mixes 100 --threads 2

Tune on `--split validation`, report on `--split test`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
import torch

from priorsep.api import Separator
from priorsep.data import toy
from priorsep.data.toy import ToyDataset
from priorsep.metrics import si_sdr

SILENT_DB = -120.0
"""The energy (dB of the mix's) a slot holding exact zeros counts as in the means."""
LEVELS = (0.05, 2.0)
GAINS = (0.1, 1.0)
FIFTH = "pulse"


def draws(seed: int, split: str, index: int, what: int) -> np.random.Generator:
    """A generator for one mix of one condition (`what` tells the conditions apart)."""
    split_id = toy.SPLITS[split][0]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence((seed, split_id,
                                                                      what, index))))


def improvement(estimates: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """SI-SDR of the estimates minus that of the mix, (n, n_sources)."""
    mix = truth.mean(1, keepdim=True).expand_as(truth)
    return si_sdr(estimates, truth) - si_sdr(mix, truth)


def separate_all(separator: Separator, mixes: torch.Tensor) -> tuple[torch.Tensor, float]:
    """(estimates (n, n_sources, time), seconds)."""
    began = time.perf_counter()
    estimates = torch.stack([separator.separate_tensor(mix) for mix in mixes])
    return estimates, time.perf_counter() - began


def summary(values: torch.Tensor) -> dict:
    flat = values.flatten()
    return {"mean SI-SDRi (dB)": round(float(flat.mean()), 2),
            "above 10 dB (%)": round(100 * float((flat > 10).double().mean()), 1),
            "worst (dB)": round(float(flat.min()), 2)}


def fifth_prior(path: str | None, sample_rate: int, threads: int) -> Path:
    """The pulse prior: `path`, or one trained here from generated solos."""
    if path:
        return Path(path)
    home = Path(tempfile.mkdtemp(prefix="priorsep-fifth-"))
    folder = home / "solos" / FIFTH
    folder.mkdir(parents=True)
    rng = np.random.Generator(np.random.PCG64(7))
    for index in range(200):
        params = toy.params_from_uniform(torch.from_numpy(rng.random((3, 1))))
        wave = toy.render(params, sample_rate, sample_rate, names=(FIFTH,))[0]
        soundfile.write(folder / f"{index:03d}.wav", wave.numpy(), sample_rate, subtype="FLOAT")
    command = [sys.executable, "-m", "priorsep", "train", "--dataset", "folder", "--root",
               str(home / "solos"), "--prior", "wavetable", "--steps", "600", "--batch-size",
               "8", "--crop-length", "4096", "--lr", "3e-3", "--quiet", "-o", str(home / "model")]
    print(f"training the {FIFTH} prior: {' '.join(command[2:])}", file=sys.stderr, flush=True)
    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    return home / "model"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="toy")
    parser.add_argument("--split", default="test", choices=("validation", "test"))
    parser.add_argument("--n-mixes", type=int, default=100, help="mixes per condition")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fifth", help=f"a trained {FIFTH} prior (default: train one)")
    parser.add_argument("--conditions", default="plain,level,gains,subsets,five")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    conditions = args.conditions.split(",")
    separator = Separator.from_pretrained(args.model)
    rate, n = separator.sample_rate, args.n_mixes
    data = ToyDataset(args.split, n_examples=n, sample_rate=rate)
    truth = data.batch(range(n))  # (n, 4, time)
    seconds_each = truth.shape[-1] / rate
    results: dict[str, dict] = {}

    def report(name: str, values: torch.Tensor, spent: float, mixes: int, **extra) -> None:
        row = {**summary(values), "real-time factor": round(spent / (mixes * seconds_each), 3),
               "mixes": mixes, **extra}
        results[name] = row
        print(f"{name:8s} " + "  ".join(f"{key} {value}" for key, value in row.items()),
              flush=True)

    plain = None
    if "plain" in conditions or "level" in conditions:
        estimates, spent = separate_all(separator, truth.mean(1))
        plain = improvement(estimates, truth)
        report("plain", plain, spent, n, **{"per source (dB)": [
            round(v, 2) for v in plain.mean(0).tolist()]})
    if "level" in conditions:
        levels = torch.tensor([math.exp(draws(args.seed, args.split, i, 1).uniform(
            math.log(LEVELS[0]), math.log(LEVELS[1]))) for i in range(n)])
        estimates, spent = separate_all(separator, truth.mean(1) * levels[:, None])
        scaled = improvement(estimates, truth)
        report("level", scaled, spent, n, **{
            "change from plain (dB)": round(float((scaled - plain).mean()), 2),
            "levels": f"log-uniform in [{LEVELS[0]}, {LEVELS[1]}]"})
    if "gains" in conditions:
        gains = torch.tensor(np.stack([draws(args.seed, args.split, i, 2).uniform(
            *GAINS, size=truth.shape[1]) for i in range(n)]), dtype=truth.dtype)
        weighted = truth * gains[..., None]
        estimates, spent = separate_all(separator, weighted.mean(1))
        report("gains", improvement(estimates, weighted), spent, n,
               gains=f"uniform in [{GAINS[0]}, {GAINS[1]}] per source")
    if "subsets" in conditions:
        subsets = [subset for size in range(1, 5)
                   for subset in itertools.combinations(range(truth.shape[1]), size)]
        present = torch.zeros(n, truth.shape[1], dtype=torch.bool)
        for index in range(n):
            present[index, list(subsets[index % len(subsets)])] = True
        partial = truth * present[..., None]
        mixes = partial.mean(1)
        estimates, spent = separate_all(separator, mixes)
        several = present.sum(1) > 1
        gains_db = improvement(estimates[several], partial[several])[present[several]]
        alone = ~several
        lone_sdr = si_sdr(estimates[alone], partial[alone])[present[alone]]
        slot = (estimates / truth.shape[1]).double().pow(2).sum(-1)
        energy = 10 * torch.log10(slot / mixes.double().pow(2).sum(-1, keepdim=True))
        absent = energy[~present].clamp_min(SILENT_DB)
        report("subsets", gains_db, spent, n, **{
            "lone source SI-SDR (dB)": round(float(lone_sdr.mean()), 2),
            "absent slot energy, mean (dB of the mix)": round(float(absent.mean()), 1),
            "absent slot energy, worst (dB of the mix)": round(float(absent.max()), 1),
            "absent slots above -40 dB": f"{int((absent > -40).sum())} of {absent.numel()}",
            "absent slots silent (%)": round(100 * float((slot[~present] == 0).double().mean()),
                                             1)})
    if "five" in conditions:
        prior = fifth_prior(args.fifth, rate, args.threads or torch.get_num_threads())
        combined = Separator.from_pretrained(f"{args.model},{prior}")
        extra = torch.stack([toy.render(toy.params_from_uniform(torch.from_numpy(
            draws(args.seed, args.split, i, 5).random((3, 1)))), truth.shape[-1], rate,
            names=(FIFTH,)) for i in range(n)])
        five = torch.cat([truth, extra], dim=1)
        estimates, spent = separate_all(combined, five.mean(1))
        values = improvement(estimates, five)
        report("five", values, spent, n, **{
            "sources": list(combined.sources),
            "per source (dB)": [round(v, 2) for v in values.mean(0).tolist()]})
    if args.json:
        Path(args.json).write_text(json.dumps({"model": args.model, "split": args.split,
                                               "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
