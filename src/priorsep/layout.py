"""The names of the files in a model folder, and the format version `config.json` carries.

The lowest layer of the model-folder modules: `storage` reads and writes these files,
`hub_client` downloads them, `cards` names them in a model card, `hub` tells a folder's kind
by them. It imports nothing, so any of those may import it.
"""

from __future__ import annotations

import re

FORMAT_VERSION = 3
"""3: the model's noise range is `trained_sigma_min/max` (2 and 1 wrote `sigma_min/max`);
2: `model` names its `family` and holds its `architecture`; 1 (FloWaveNet only) held `flow`."""
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
SEPARATION_NAME = "separation.json"
"""Optional: the tuned sampler settings (see `priorsep.storage.SeparationSettings`)."""
LEVELS_NAME = "levels.json"
"""A per-level model: {"levels": {"<sigma>": "./sigma-<sigma>", ...}}, one model folder per
noise level (`priorsep.training.finetune_levels`)."""
LEVEL_FOLDER = re.compile(r"sigma-(?P<sigma>[0-9.eE+-]+)")
POSTERIOR_NAME = "posterior.safetensors"
"""Optional: the amortised posterior encoder's weights (see `priorsep.amortised`)."""
POSTERIOR_CONFIG_NAME = "posterior.json"
"""The encoder's configuration ({"config": PosteriorConfig fields, "parameters", "training"});
folders written before it hold the configuration in `info["posterior"]["config"]`."""
BAG_NAME = "sources.json"
"""A folder holding this file (and no config.json) is a bag of per-source models."""

MODEL_FILES = (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME, POSTERIOR_NAME, POSTERIOR_CONFIG_NAME,
               SEPARATION_NAME)
"""The files of a model folder, config.json first (it tells the kind)."""
FOLDER_FILES = (*MODEL_FILES, LEVELS_NAME, BAG_NAME)
"""Every file that tells what a folder is: a model's, a per-level manifest, a bag."""
