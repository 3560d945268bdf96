"""The sections of `priorsep evaluate` (see `priorsep.evaluate`, which runs them).

- `levels`: the priors under test and their noise levels (sigma-conditional or per-level);
- `likelihood`: cross-likelihood, noise conditioning, constant inputs, Gaussian noise;
- `separation`: SI-SDR / SDR with the mix and oracle anchors, SiSEC SDR via museval;
- `samples`: draws from the priors at several temperatures;
- `plots` and `markdown`: the PNGs and report.md, both drawn from the JSON report alone.
"""
