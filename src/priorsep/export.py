"""Hub-ready folders: a model's files plus a model card that `hf upload` can push as is.

`export_model` accepts any model id (`priorsep.hub`). One model becomes one folder; a list or a
bag becomes a bag folder (`sources.json` naming one subfolder per part), which resolves to the
same priors once uploaded. The card's YAML front matter (library name, license, tags, datasets,
pipeline tag) is written by `huggingface_hub.ModelCardData`, so the Hub reads it as it does any
other card; training details and evaluation figures come from `config.json`'s `info`.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCardData

from priorsep.config import ModelConfig
from priorsep.errors import OutputExistsError, UsageError
from priorsep.files import atomic_write_text
from priorsep.hub import BAG_NAME, ResolvedModel, resolve_model
from priorsep.nn.registry import build_priors
from priorsep.storage import (
    CARD_NAME,
    CONFIG_NAME,
    FORMAT_VERSION,
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

TAGS = ("audio", "source-separation", "priorsep")
FAMILY_TAGS = {"flowavenet": ("normalizing-flow", "flowavenet"),
               "score": ("score-based", "diffusion")}
REFERENCES = (
    "FloWaveNet: Kim et al. 2019, *FloWaveNet: A Generative Flow for Raw Audio*, arXiv:1811.02155",
    "BASIS: Jayaram & Thickstun 2020, *Source Separation with Deep Generative Priors*, "
    "arXiv:2002.07942",
    "EDM: Karras et al. 2022, *Elucidating the Design Space of Diffusion-Based Generative "
    "Models*, arXiv:2206.00364",
    "MSDM: Mariani et al. 2024, *Multi-Source Diffusion Models for Simultaneous Music "
    "Generation and Separation*, arXiv:2302.02257",
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
        card = bag_card(resolved, sections, title=title, repo_id=repo_id, **front)
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


def _front_matter(license: str, datasets: Sequence[str], tags: Sequence[str],
                  infos: Sequence[dict[str, Any]], configs: Sequence[ModelConfig]) -> str:
    known = [d for info in infos for d in info.get("datasets", []) if isinstance(d, str)]
    data = ModelCardData(
        library_name="priorsep", license=license, pipeline_tag="audio-to-audio",
        tags=list(dict.fromkeys([*TAGS, *(tag for config in configs
                                          for tag in FAMILY_TAGS.get(config.family, ())),
                                 *tags])),
        datasets=list(dict.fromkeys([*datasets, *known])))
    return f"---\n{data.to_yaml()}\n---\n"


def _usage(repo_id: str | None, n_sources: int) -> list[str]:
    name = repo_id or "OWNER/NAME"
    return [
        "## Usage", "",
        "```bash",
        "pip install priorsep",
        f"priorsep models download {name}        # once, for offline use later",
        f"priorsep separate mix.wav -o separated --model {name}",
        "```", "",
        "```python",
        "from priorsep.hub import load_priors",
        "",
        f'priors = load_priors("{name}")',
        f"score = priors.score(sources, sigma=0.1)  # (batch, {n_sources}, time), "
        "grad log p_sigma",
        "```",
    ]


def family_name(config: ModelConfig) -> str:
    """How a card names the priors' family."""
    return {"flowavenet": "FloWaveNet", "score": "Score-based"}.get(config.family,
                                                                    config.family)


def _model_table(config: ModelConfig, info: dict[str, Any]) -> list[str]:
    rows = [
        ("sources", ", ".join(config.sources)),
        ("sample rate", f"{config.sample_rate} Hz"),
        ("architecture", build_priors(config).summary()),
        ("layout", "one grouped module" if config.grouped else "one module per source"),
        ("parameters", f"{info['parameters']:,}" if "parameters" in info else "unknown"),
        ("noise levels trained on",
         f"sigma in [{config.trained_sigma_min}, {config.trained_sigma_max}]"),
        ("mixing", config.mixing if config.gains is None
         else f"{config.mixing} {list(config.gains)}"),
        ("files", f"`{CONFIG_NAME}` (format version {FORMAT_VERSION}), `{WEIGHTS_NAME}`"),
    ]
    return ["| | |", "|---|---|", *(f"| {key} | {value} |" for key, value in rows)]


def _details(info: dict[str, Any], level: str = "##") -> list[str]:
    """The training and evaluation sections of a card, from config.json's `info`."""
    lines: list[str] = []
    training = info.get("training") or {}
    lines += ["", f"{level} Training", ""]
    if training:
        lines += [f"- {key}: {value}" for key, value in training.items()]
    else:
        lines += ["No training details were recorded with these weights."]
    evaluation = info.get("evaluation") or {}
    lines += ["", f"{level} Evaluation", ""]
    bullets = [f"- {key}: {value}" for key, value in evaluation.items()
               if not isinstance(value, dict)]
    tables = [["| | " + " | ".join(map(str, value)) + " |", "|---|" + "---:|" * len(value),
               f"| {key} | " + " | ".join(map(str, value.values())) + " |"]
              for key, value in evaluation.items() if isinstance(value, dict)]
    blocks = ([bullets] if bullets else []) + tables  # a figure per source: a one-row table
    for index, block in enumerate(blocks):
        lines += ([""] if index else []) + block
    if not blocks:
        lines += ["No evaluation figures were recorded with these weights."]
    return lines


def model_card(config: ModelConfig, info: dict[str, Any], *, title: str,
               repo_id: str | None, license: str, datasets: Sequence[str],
               tags: Sequence[str]) -> str:
    """The README.md of one exported model: front matter, usage, model, training, evaluation."""
    lines = [
        _front_matter(license, datasets, tags, [info], [config]),
        f"# {info.get('name', title)}", "",
        f"{family_name(config)} source priors for **{', '.join(config.sources)}** at "
        f"{config.sample_rate} Hz, for unsupervised source separation with `priorsep`. Each "
        "source has its own prior, learned from solo recordings of that source only; a mix "
        "is separated by sampling the sources from the posterior under the mix.", "",
        *_usage(repo_id, len(config.sources)), "",
        "## Model", "",
        *_model_table(config, info),
        *_details(info),
        "", "## References", "",
        *(f"- {reference}" for reference in REFERENCES),
    ]
    return "\n".join(lines).rstrip() + "\n"


def bag_card(resolved: ResolvedModel,
             sections: Sequence[tuple[str, str, ModelConfig, dict[str, Any]]], *, title: str,
             repo_id: str | None, license: str, datasets: Sequence[str],
             tags: Sequence[str]) -> str:
    """The README.md of an exported combination: one section per part (subfolder).

    Args:
        sections: per part of `resolved`, in order: (subfolder, where it came from, config,
            info).
    """
    config = resolved.config
    lines = [
        _front_matter(license, datasets, tags, [info for *_, info in sections],
                     [config for _, _, config, _ in sections]),
        f"# {title}", "",
        f"Source priors for **{', '.join(config.sources)}** at "
        f"{config.sample_rate} Hz, gathered from {len(sections)} models, for unsupervised "
        f"source separation with `priorsep`. `{BAG_NAME}` names the subfolder of each source; "
        "every subfolder is a complete model folder.", "",
        *_usage(repo_id, len(config.sources)), "",
        "## Sources", "",
        "| source | folder | exported from |", "|---|---|---|",
    ]
    for ref in resolved.selection:
        folder, origin, _, _ = sections[ref.part]
        lines.append(f"| {ref.name} | `{folder}/` | {origin} |")
    for folder, _, part_config, info in sections:
        lines += ["", f"## `{folder}/`", "", *_model_table(part_config, info),
                  *_details(info, level="###")]
    lines += ["", "## References", "", *(f"- {reference}" for reference in REFERENCES)]
    return "\n".join(lines).rstrip() + "\n"
