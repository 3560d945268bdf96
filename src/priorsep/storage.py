"""The model folder: `config.json` + `model.safetensors` + `README.md` model card.

The file names live in `priorsep.layout` (re-exported here); the card's text in `priorsep.cards`.

A folder describes itself: `config.json` holds the format version and the whole `ModelConfig`,
so loading rebuilds the priors with no hyperparameter typed twice and no pickled classes.
Every file is written to a temporary name first and renamed, so a crash never leaves a
half-written model.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from priorsep.cards import model_card
from priorsep.config import ModelConfig, PosteriorConfig, SeparationSettings, from_dict
from priorsep.errors import ModelFormatError
from priorsep.files import atomic_write, atomic_write_text
from priorsep.layout import (  # noqa: F401  (the names of a model folder's files, re-exported)
    CARD_NAME,
    CONFIG_NAME,
    FORMAT_VERSION,
    LEVEL_FOLDER,
    LEVELS_NAME,
    POSTERIOR_CONFIG_NAME,
    POSTERIOR_NAME,
    SEPARATION_NAME,
    WEIGHTS_NAME,
)
from priorsep.nn.interface import SourcePrior
from priorsep.nn.posterior import PosteriorEncoder
from priorsep.nn.registry import build_priors


def save_weights(module: torch.nn.Module, path: Path) -> None:
    """Write the state of `module` to `path` as safetensors (CPU, contiguous), atomically."""
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(state, str(tmp)))


def load_weights(module: torch.nn.Module, path: Path) -> None:
    """Load the safetensors file `path` into `module`, every key matching.

    Raises:
        ModelFormatError: naming the file, when it is missing, damaged or of another shape.
    """
    if not path.is_file():
        raise ModelFormatError(f"{path}: missing")
    try:
        module.load_state_dict(load_file(str(path)), strict=True)
    except (SafetensorError, RuntimeError, OSError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else "unreadable"
        raise ModelFormatError(
            f"{path}: corrupt or does not match config.json ({first_line})") from None


def save_model(
    priors: SourcePrior, folder: str | os.PathLike, info: dict[str, Any] | None = None
) -> Path:
    """Write `priors` as a model folder; `info` (training details, figures) goes into the card.

    Returns:
        The folder path.
    """
    folder = Path(folder)
    info = dict(info or {})
    info.setdefault("parameters", sum(p.numel() for p in priors.parameters()))
    config = {
        "format_version": FORMAT_VERSION,
        "library": "priorsep",
        "model": dataclasses.asdict(priors.config),
        "info": info,
    }
    save_weights(priors, folder / WEIGHTS_NAME)
    atomic_write_text(folder / CONFIG_NAME, json.dumps(config, indent=2) + "\n")
    atomic_write_text(folder / CARD_NAME, model_card(priors.config, info, priors=priors))
    return folder


def update_info(folder: str | os.PathLike, key: str, value: Any) -> None:
    """Set `info[key]` in a model folder's config.json and rewrite its model card."""
    folder = Path(folder)
    config, info = read_config(folder)
    raw = json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8"))
    info[key] = value
    raw["info"] = info
    atomic_write_text(folder / CONFIG_NAME, json.dumps(raw, indent=2) + "\n")
    atomic_write_text(folder / CARD_NAME, model_card(config, info))


def read_config(folder: str | os.PathLike) -> tuple[ModelConfig, dict[str, Any]]:
    """Parse `config.json` of a model folder into (ModelConfig, info)."""
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise ModelFormatError(f"{path}: missing (not a priorsep model folder)")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        version = raw["format_version"]
        if version > FORMAT_VERSION:
            raise ModelFormatError(
                f"{path}: format version {version} is newer than this priorsep "
                f"understands ({FORMAT_VERSION}); upgrade priorsep"
            )
        return ModelConfig.from_dict(raw["model"]), raw.get("info", {})
    except ModelFormatError:
        raise
    except (ValueError, KeyError, TypeError) as error:
        raise ModelFormatError(f"{path}: invalid model config ({error})") from None


def load_model(folder: str | os.PathLike, device: str | torch.device = "cpu") -> SourcePrior:
    """Rebuild the priors of a model folder from `config.json` and `model.safetensors`."""
    config, _ = read_config(folder)
    return build_model(config, folder, device)


def build_model(config: ModelConfig, folder: str | os.PathLike,
                device: str | torch.device = "cpu") -> SourcePrior:
    """The priors `config` describes (as read from the folder's `config.json`), with the
    weights of the folder's `model.safetensors`; eval mode, on `device`."""
    priors = build_priors(config)
    load_weights(priors, Path(folder) / WEIGHTS_NAME)
    return priors.to(device).eval()


def stored_settings(info: dict[str, Any]) -> SeparationSettings:
    """The settings in `info["separation"]` (what `separation.json` holds, or, from older
    folders, the Langevin fields alone); figures under "measured" are for humans.

    Raises:
        ModelFormatError: the settings are not valid.
    """
    stored = {k: v for k, v in (info.get("separation") or {}).items() if k != "measured"}
    try:
        return SeparationSettings.from_dict(stored)
    except (ValueError, TypeError) as error:
        raise ModelFormatError(f"invalid separation settings ({error})") from None


def read_separation(folder: str | os.PathLike) -> SeparationSettings:
    """The tuned separation settings of a model folder: `separation.json` when present, else
    the "separation" entry of config.json's info (older folders), else the defaults."""
    path = Path(folder) / SEPARATION_NAME
    if path.is_file():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as error:
            raise ModelFormatError(f"{path}: not JSON ({error})") from None
        try:
            return stored_settings({"separation": stored})
        except ModelFormatError as error:
            raise ModelFormatError(f"{path}: {error}") from None
    return stored_settings(read_config(folder)[1])


def write_separation(folder: str | os.PathLike, settings: SeparationSettings,
                     measured: dict[str, Any] | None = None) -> None:
    """Write `separation.json`; `measured` (figures, how they were tuned) goes beside the
    settings for humans and is ignored when loading."""
    values = settings.to_dict()
    if measured:
        values["measured"] = measured
    atomic_write_text(Path(folder) / SEPARATION_NAME, json.dumps(values, indent=2) + "\n")



def level_folder_name(sigma: float) -> str:
    """The folder of one level of a per-level model: `sigma-<value>`."""
    return f"sigma-{sigma:g}"


def level_folders(path: str | os.PathLike) -> list[tuple[float, Path]]:
    """(sigma, folder) of every `sigma-<value>/` model folder under `path`, lowest first."""
    path = Path(path)
    if not path.is_dir():
        return []
    found = []
    for child in path.iterdir():
        match = LEVEL_FOLDER.fullmatch(child.name)
        if match and (child / CONFIG_NAME).is_file():
            try:
                found.append((float(match["sigma"]), child))
            except ValueError:
                continue
    return sorted(found)


def read_levels(path: str | os.PathLike) -> list[tuple[float, str]]:
    """(sigma, model id relative to the folder) of a `levels.json` manifest, lowest first."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        levels = sorted((float(sigma), str(value)) for sigma, value in raw["levels"].items())
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise ModelFormatError(f"{path}: not a levels manifest "
                               f'{{"levels": {{"<sigma>": "./sigma-<sigma>"}}}} ({error})'
                               ) from None
    if not levels or any(sigma <= 0 or not math.isfinite(sigma) for sigma, _ in levels):
        raise ModelFormatError(f"{path}: needs one or more positive noise levels")
    return levels


def write_levels(folder: str | os.PathLike, sigmas: list[float]) -> None:
    """The `levels.json` manifest of the `sigma-<value>/` folders in `folder`."""
    values = {f"{sigma:g}": f"./{level_folder_name(sigma)}" for sigma in sorted(sigmas)}
    atomic_write_text(Path(folder) / LEVELS_NAME, json.dumps({"levels": values}, indent=2) + "\n")


def save_posterior(encoder: PosteriorEncoder, folder: str | os.PathLike,
                   training: dict[str, Any]) -> None:
    """Write the encoder into a model folder: its weights, its configuration file and the
    lines of the model card (`info["posterior"]`, for people)."""
    folder = Path(folder)
    described = {"config": dataclasses.asdict(encoder.config),
                 "parameters": sum(p.numel() for p in encoder.parameters())}
    save_weights(encoder, folder / POSTERIOR_NAME)
    atomic_write_text(folder / POSTERIOR_CONFIG_NAME,
                      json.dumps({**described, "training": training}, indent=2) + "\n")
    update_info(folder, "posterior", {**described, **training})


def load_posterior(folder: str | os.PathLike,
                   device: str | torch.device = "cpu") -> PosteriorEncoder | None:
    """The encoder stored in a model folder, or None when it has none."""
    folder = Path(folder)
    config, info = read_config(folder)
    stored = info.get("posterior")
    typed = folder / POSTERIOR_CONFIG_NAME
    if typed.is_file():
        try:
            stored = json.loads(typed.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ModelFormatError(f"{typed}: unreadable ({error})") from None
    if not stored:
        return None
    path = folder / POSTERIOR_NAME
    if not path.is_file():
        raise ModelFormatError(f"{path}: missing (config.json describes a posterior)")
    try:
        posterior_config = from_dict(PosteriorConfig, stored["config"])
    except (ValueError, KeyError, TypeError) as error:
        raise ModelFormatError(f"{typed if typed.is_file() else folder / CONFIG_NAME}: "
                               f"invalid posterior config ({error})") from None
    encoder = PosteriorEncoder(posterior_config, len(config.sources))
    load_weights(encoder, path)
    return encoder.to(device).eval()
