"""Datasets of solo sources (for training priors) and of mixes (for evaluation)."""


DATASETS: dict[str, tuple[str, ...]] = {
    "train": ("toy", "folder", "chorales"),
    "posterior": ("toy", "folder", "chorales", "mixes"),
    "evaluate": ("toy", "musdb", "folder", "chorales"),
}
"""The dataset names each use takes: `train` and `finetune-noise` (solo sources),
`train-posterior` (mixes, or solos mixed on the fly) and `evaluate` (held-out sources)."""
