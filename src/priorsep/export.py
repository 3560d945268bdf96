"""Hub-ready folders: a model's files plus a model card that `hf upload` can push as is.

`export_model` accepts any model id (`priorsep.hub`). One model becomes one folder; a list or a
bag becomes a bag folder (`sources.json` naming one subfolder per part), which resolves to the
same priors once uploaded. The cards come from `priorsep.cards`, the writer training uses too.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from priorsep.cards import bag_card, model_card
from priorsep.config import ModelConfig
from priorsep.errors import OutputExistsError, UsageError
from priorsep.files import atomic_write_text
from priorsep.hub import BAG_NAME, resolve_model
from priorsep.storage import (
    CARD_NAME,
    CONFIG_NAME,
    POSTERIOR_CONFIG_NAME,
    POSTERIOR_NAME,
    SEPARATION_NAME,
    WEIGHTS_NAME,
    level_folder_name,
    load_model,
    load_posterior,
    read_config,
    read_separation,
    write_levels,
)


def export_model(model_id: str, out_dir: str | os.PathLike, *, license: str = "mit",
                 datasets: Sequence[str] = (), tags: Sequence[str] = (),
                 repo_id: str | None = None, force: bool = False, **resolve_options) -> Path:
    """Write `model_id` as a folder ready for `hf upload OWNER/NAME DIR .`.

    Args:
        license: license id for the card (Hub license identifiers: mit, apache-2.0, cc-by-4.0...).
        datasets: Hub dataset ids the priors were trained on (also read from info["datasets"]).
        tags: extra card tags, after priorsep's own.
        repo_id: the repo the folder will be pushed to, for the card's usage lines.
        force: write into a folder that is not empty (existing model files are replaced).
        resolve_options: passed to `resolve_model` (revision, offline, timeout, notify).

    Returns:
        The folder.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise OutputExistsError(f"{out} is not empty; choose a new folder")
    resolved = resolve_model(model_id, **resolve_options)
    title = repo_id or out.resolve().name
    front = dict(license=license, datasets=datasets, tags=tags)
    if resolved.folder is not None:
        config, info = _copy_model(resolved.folder, out)
        card = model_card(config, info, title=title, repo_id=repo_id, **front)
    elif resolved.levels:
        for sigma, part in zip(resolved.levels, resolved.parts, strict=True):
            config, info = _copy_model(part.folder, out / level_folder_name(sigma))
            atomic_write_text(out / level_folder_name(sigma) / CARD_NAME,
                              model_card(config, info, title=f"{title}: sigma = {sigma:g}",
                                         repo_id=None, **front))
        write_levels(out, list(resolved.levels))
        if resolved.top is not None and (resolved.top / SEPARATION_NAME).is_file():
            shutil.copyfile(resolved.top / SEPARATION_NAME, out / SEPARATION_NAME)
        levels = ", ".join(f"{sigma:g}" for sigma in resolved.levels)
        card = model_card(resolved.config, {}, title=title, repo_id=repo_id, **front) + (
            f"\nOne model per noise level (sigma = {levels}) in `sigma-<level>/`, listed in "
            "`levels.json`; separation uses the level nearest to each step's noise level.\n")
    else:
        sections = []
        bag: dict[str, str] = {}
        for index, part in enumerate(resolved.parts):
            names = [ref.name for ref in resolved.selection if ref.part == index]
            folder = "-".join(names).replace("/", "_").replace("\\", "_")
            config, info = _copy_model(part.folder, out / folder)
            atomic_write_text(out / folder / CARD_NAME,
                              model_card(config, info, title=f"{title}: {folder}",
                                         repo_id=None, **front))
            bag.update({name: f"./{folder}" for name in names})
            origin = {"hub": f"`{part.model_id}`", "bundled": f"bundled `{part.model_id}`"}.get(
                part.kind, f"local folder `{part.folder.name}`")
            sections.append((folder, origin, config, info))
        bag = {name: bag[name] for name in resolved.sources}  # the combination's order
        atomic_write_text(out / BAG_NAME, json.dumps({"sources": bag}, indent=2) + "\n")
        card = bag_card(resolved.config, [(ref.name, ref.part) for ref in resolved.selection],
                        sections, title=title, repo_id=repo_id, **front)
    atomic_write_text(out / CARD_NAME, card)
    return out


def _copy_model(folder: Path, out: Path) -> tuple[ModelConfig, dict[str, Any]]:
    """Check that `folder` loads, then copy its config and weights (and encoder) byte for byte."""
    load_model(folder)  # raises ModelFormatError naming the file if anything is off
    load_posterior(folder)
    out.mkdir(parents=True, exist_ok=True)
    read_separation(folder)
    optional = [name for name in (POSTERIOR_NAME, POSTERIOR_CONFIG_NAME, SEPARATION_NAME)
                if (folder / name).is_file()]
    for name in [CONFIG_NAME, WEIGHTS_NAME, *optional]:
        shutil.copyfile(folder / name, out / name)  # follows the cache's symlinks
    return read_config(out)


