"""Training: the shared loop (`loop`) and the trainers of the source priors (`priors`); the
amortised posterior's trainer is `priorsep.amortised`."""

from priorsep.training.loop import (
    CHECKPOINT_NAME,
    SourceData,
    TrainingStep,
    distributed_rank,
    fresh_checkpoint_path,
    learning_rate,
    optimise,
    rank_device,
)
from priorsep.training.priors import finetune_levels, train, training_card

__all__ = ["CHECKPOINT_NAME", "TrainingStep", "SourceData", "distributed_rank", "finetune_levels",
           "fresh_checkpoint_path", "learning_rate", "optimise", "rank_device", "train",
           "training_card"]
