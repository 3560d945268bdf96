"""Model ids -> model folders on disk: bundled names, local folders, Hugging Face Hub repos.

The id grammar and the resolver that follows it; `priorsep.hub` holds the entry points
(`resolve_model`, `load_priors`, `list_models`) and where the bundled models live.

A model id is one of
- a bundled name (`toy`, the default): a folder shipped in `priorsep/weights/`; never networked;
- a local path: a model folder (config.json + model.safetensors + README.md), a bag folder
  (holding `sources.json`), a bag file (`*.json`), or a per-level folder (no config.json, but
  `levels.json` or `sigma-<value>/` model folders, as per-level fine-tuning writes);
- a Hub repo `owner/name` or `owner/name@revision` (branch, tag or commit), downloaded with
  `huggingface_hub` into its standard cache and read from there afterwards;
- a comma-separated list of ids, whose sources are gathered into one set of priors.

A bag maps the source names of a combination to model ids, in order:
`{"sources": {"drums": "owner/drums-prior@v1", "bass": "./bass"}}`. Each name takes the source
of that name from its model, or the only source of a one-source model. Values starting with `./`
or `../` are relative to the bag; in a Hub repo they name subfolders at the bag's commit, so a
repo can hold one model folder per source. Any other value is an id as typed on the command line.

Hub settings are read from the environment each time a model is resolved: HF_ENDPOINT,
HF_HUB_CACHE or HF_HOME, HF_HUB_OFFLINE, HF_HUB_ETAG_TIMEOUT, PRIORSEP_HUB_DEADLINE, and
HF_TOKEN (read by `huggingface_hub`). When the Hub cannot be reached, a cached copy is used
with a notice.
"""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from priorsep.config import DEFAULT_MODEL, ModelConfig
from priorsep.errors import (
    HubUnreachableError,
    ModelFormatError,
    ModelNotCachedError,
    ModelNotFoundError,
    UsageError,
)
from priorsep.hub_client import COMMIT, HubClient, HubUnavailable
from priorsep.layout import (
    BAG_NAME,
    CONFIG_NAME,
    FOLDER_FILES,
    LEVELS_NAME,
)
from priorsep.nn.prior import SourceRef, combine_configs
from priorsep.storage import level_folders, read_config, read_levels

MAX_NESTING = 8
"""Bags may name bags, this deep at most (a deeper chain is most likely a cycle)."""

HUB_ID = re.compile(r"(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?:@(?P<revision>[^\s@,]+))?")
_BUNDLED_NAME = re.compile(r"[A-Za-z0-9][\w.-]*")


@dataclass(frozen=True)
class ResolvedModel:
    """Where the files of a model id are on disk, and what they hold.

    A single model has a `folder`; a combination has `parts` (each a single model, loaded once)
    and a `selection` saying which source of which part is each of its sources; a per-level
    model has one part per noise level in `levels`.
    """

    model_id: str
    kind: str
    """"bundled", "local", "hub", "composite" or "levels"."""
    config: ModelConfig
    """The model's configuration; for a combination, the combined one (`combine_configs`)."""
    folder: Path | None = None
    revision: str | None = None
    """Hub models: the branch, tag or commit asked for."""
    commit: str | None = None
    """Hub models: the commit that revision resolved to."""
    parts: tuple[ResolvedModel, ...] = ()
    selection: tuple[SourceRef, ...] = ()
    levels: tuple[float, ...] = ()
    """Per-level models: the noise level of each part (one model per level)."""
    top: Path | None = None
    """Per-level models: the folder holding the levels (and maybe separation.json, and a clean
    model's config.json, which evaluation uses as the base priors)."""
    info: dict[str, Any] = field(default_factory=dict)
    """The `info` of the config.json of `folder` (or of `top`, when it has one), as read while
    resolving: loading reads no config.json again."""
    files: tuple[str, ...] = ()
    """The model-folder files (`FOLDER_FILES`) present in `folder` (or `top`)."""

    @property
    def sources(self) -> tuple[str, ...]:
        return self.config.sources

    @property
    def source_folders(self) -> dict[str, Path]:
        """The model folder each source comes from."""
        if self.folder is not None:
            return dict.fromkeys(self.sources, self.folder)
        if self.levels:
            return dict.fromkeys(self.sources, self.top)
        return {ref.name: self.parts[ref.part].folder for ref in self.selection}

    def choices(self) -> list[tuple[str, ResolvedModel, str]]:
        """(name, single model, source name in that model) for every source, in order."""
        if self.folder is not None:
            return [(source, self, source) for source in self.sources]
        return [(ref.name, self.parts[ref.part], ref.source) for ref in self.selection]


@dataclass(frozen=True)
class HubBase:
    """A folder inside a Hub repo at a fixed commit: what `./x` in a bag there is relative to."""

    repo_id: str
    revision: str
    commit: str
    prefix: str
    """"" for the repo root, else "sub/folder/"."""


def present_files(folder: Path) -> tuple[str, ...]:
    """The `FOLDER_FILES` in `folder`."""
    return tuple(name for name in FOLDER_FILES if (folder / name).is_file())


def bundled_names_in(weights_dir: Path) -> list[str]:
    """Names of the model folders in `weights_dir` (the bundled models)."""
    if not weights_dir.is_dir():
        return []
    return sorted(p.name for p in weights_dir.iterdir() if (p / CONFIG_NAME).is_file())


class Resolver:
    """Resolves ids under one set of Hub settings; bags recurse through `resolve`.

    Args:
        client: the Hub, under the settings of this resolution.
        weights_dir: the folder of the bundled models, one model folder per name.
    """

    def __init__(self, client: HubClient, weights_dir: Path) -> None:
        self.client = client
        self.weights_dir = weights_dir

    # ids of every kind

    def resolve(self, model_id: str, base: Path | HubBase, depth: int) -> ResolvedModel:
        if depth > MAX_NESTING:
            raise UsageError(f"{model_id}: bags nested more than {MAX_NESTING} deep (a cycle?)")
        if "," in model_id:
            items = [item.strip() for item in model_id.split(",") if item.strip()]
            return self._combine(model_id, [(None, self.resolve(item, base, depth + 1))
                                            for item in items])
        if model_id.startswith(("./", "../")):
            if isinstance(base, HubBase):
                return self._hub_relative(model_id, base, depth)
            path = base / model_id
            if not path.exists():
                raise ModelNotFoundError(f"{model_id}: no such folder or file in {base}")
            return self._path(path, model_id, depth)
        bundled = bundled_names_in(self.weights_dir)
        if _BUNDLED_NAME.fullmatch(model_id) and (model_id == DEFAULT_MODEL or model_id in bundled):
            return self._bundled(model_id)
        path = Path(model_id).expanduser()
        if path.exists():
            return self._path(path, model_id, depth)
        if model_id.startswith(("/", ".", "~")) or model_id.endswith(".json"):
            raise ModelNotFoundError(f"{model_id}: no such folder or file")
        match = HUB_ID.fullmatch(model_id)
        if match is not None:
            return self._hub(match["repo"], match["revision"], depth)
        names = ", ".join(bundled) or "none installed"
        raise ModelNotFoundError(f"{model_id!r} is not a bundled model ({names}), an existing "
                                 "folder or file, or a Hub id owner/name[@revision]")

    def _bundled(self, name: str) -> ResolvedModel:
        folder = self.weights_dir / name
        if not (folder / CONFIG_NAME).is_file():
            raise ModelNotFoundError(
                f"bundled model {name!r} is not installed in this copy of priorsep (no {folder}); "
                "name a local folder or a Hub model owner/name instead")
        config, info = read_config(folder)
        return ResolvedModel(name, "bundled", config, folder=folder, info=info,
                             files=present_files(folder))

    def _path(self, path: Path, model_id: str, depth: int) -> ResolvedModel:
        if path.is_file():
            return self._bag(path, model_id, path.parent, depth)
        # levels win over a clean model at the top of the same folder (evaluation's base
        # priors): separating with such a folder samples with the levels, as evaluation does
        if (path / LEVELS_NAME).is_file():
            return self._levels(path / LEVELS_NAME, model_id, path, depth)
        found = level_folders(path)
        if found:
            picks = [(sigma, self.resolve(str(folder), path, depth + 1)) for sigma, folder in found]
            return self._level_model(model_id, picks, top=path.resolve())
        if (path / CONFIG_NAME).is_file():
            config, info = read_config(path)
            return ResolvedModel(model_id, "local", config, folder=path.resolve(), info=info,
                                 files=present_files(path))
        if (path / BAG_NAME).is_file():
            return self._bag(path / BAG_NAME, model_id, path, depth)
        raise ModelFormatError(f"{path}: has neither {CONFIG_NAME} nor {BAG_NAME}, so it is not "
                               f"a priorsep model folder (nor {LEVELS_NAME} or sigma-*/ levels)")

    # per-level models

    def _levels(self, path: Path, model_id: str, base: Path | HubBase, depth: int,
                **hub_fields: str) -> ResolvedModel:
        picks = [(sigma, self.resolve(value, base, depth + 1))
                 for sigma, value in read_levels(path)]
        return self._level_model(model_id, picks, top=path.parent, **hub_fields)

    def _level_model(self, model_id: str, picks: list[tuple[float, ResolvedModel]],
                     top: Path, **hub_fields: str) -> ResolvedModel:
        first = picks[0][1].config
        for sigma, resolved in picks:
            if resolved.folder is None:
                raise UsageError(f"{model_id}: the level sigma = {sigma:g} is not one model "
                                 "folder")
            config = resolved.config
            if (config.sources, config.sample_rate, config.mixing, config.gains) != (
                    first.sources, first.sample_rate, first.mixing, first.gains):
                raise UsageError(f"{model_id}: the level models differ in sources, sample rate "
                                 "or mixing")
        files = present_files(top)
        info = read_config(top)[1] if CONFIG_NAME in files else {}
        return ResolvedModel(model_id, "levels", first, parts=tuple(p for _, p in picks),
                             levels=tuple(sigma for sigma, _ in picks), top=top, info=info,
                             files=files, **hub_fields)

    # combinations

    def _bag(self, path: Path, model_id: str, base: Path | HubBase, depth: int,
             **hub_fields: str) -> ResolvedModel:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as error:
            raise ModelFormatError(f"{path}: not a readable JSON bag ({error})") from None
        sources = raw.get("sources") if isinstance(raw, dict) else None
        if (not isinstance(sources, dict) or not sources
                or not all(isinstance(v, str) and v.strip() for v in sources.values())):
            raise ModelFormatError(f'{path}: a bag is {{"sources": {{"<name>": "<model id>", '
                                   '...}}, with at least one source')
        picks = [(name, self.resolve(value.strip(), base, depth + 1))
                 for name, value in sources.items()]
        return self._combine(model_id, picks, **hub_fields)

    def _combine(self, model_id: str, picks: list[tuple[str | None, ResolvedModel]],
                 **hub_fields: str) -> ResolvedModel:
        """Gather sources: all of a model's when `name` is None, else the one called `name`."""
        parts: list[ResolvedModel] = []
        selection: list[SourceRef] = []
        for name, resolved in picks:
            if resolved.levels:
                raise UsageError(f"cannot combine {model_id}: {resolved.model_id} is a per-level "
                                 "model (one model per noise level), which a combination "
                                 "cannot hold")
            choices = resolved.choices()
            if name is not None:
                named = [choice for choice in choices if choice[0] == name]
                if not named and len(choices) != 1:
                    raise UsageError(
                        f"{resolved.model_id} has no source {name!r} (it has "
                        f"{', '.join(resolved.sources)}); name one of those in the bag")
                choices = [(name, *(named or choices)[0][1:])]
            for source_name, part, source in choices:
                index = next((i for i, known in enumerate(parts) if known.folder == part.folder),
                             len(parts))
                if index == len(parts):
                    parts.append(part)
                selection.append(SourceRef(source_name, index, source))
        try:
            config = combine_configs([part.config for part in parts], selection)
        except ValueError as error:
            raise UsageError(f"cannot combine {model_id}: {error} (a bag file can pick and "
                             "rename sources, see docs/models.md)") from None
        return ResolvedModel(model_id, "composite", config, parts=tuple(parts),
                             selection=tuple(selection), **hub_fields)

    # the Hub

    def _hub_relative(self, value: str, base: HubBase, depth: int) -> ResolvedModel:
        sub = posixpath.normpath(posixpath.join(base.prefix, value))
        label = f"{base.repo_id}@{base.revision}"
        if sub in (".", "..") or sub.startswith("../"):
            raise ModelFormatError(f"{label}: {BAG_NAME} names {value!r}, outside the repository")
        return self._hub(base.repo_id, base.commit, depth, prefix=sub + "/",
                         label=f"{label}/{sub}", revision_asked=base.revision)

    def _hub(self, repo_id: str, revision: str | None, depth: int, prefix: str = "",
             label: str | None = None, revision_asked: str | None = None) -> ResolvedModel:
        """Resolve a folder of a Hub repo: ask the Hub and download, or use the cache."""
        revision = revision or "main"
        label = label or f"{repo_id}@{revision}"
        download_id = f"{repo_id}@{revision_asked or revision}"  # the repo, not a subfolder
        client, settings = self.client, self.client.settings
        client.check_cache()
        found = None
        if settings.offline or COMMIT.fullmatch(revision):  # a cached commit never changes
            found = client.cached_layout(repo_id, revision, prefix)
        online = found is None and not settings.offline
        if online:
            try:
                found = client.probe(repo_id, revision, prefix, label)
            except HubUnavailable as error:
                found = client.cached_layout(repo_id, revision, prefix)
                if found is None:
                    raise HubUnreachableError(
                        f"{label}: could not reach the Hub at {settings.endpoint} ({error}), and "
                        f"it is not in the cache ({settings.cache_dir}); check the connection and "
                        "HF_ENDPOINT, or wait longer with HF_HUB_ETAG_TIMEOUT (between bytes) or "
                        "PRIORSEP_HUB_DEADLINE (in all)") from None
                client.notice(f"could not reach the Hub at {settings.endpoint} ({error}); using "
                              f"the cached copy of {label} (commit {found[1][:12]}), which may "
                              "be out of date")
                online = False
        elif found is None:
            raise ModelNotCachedError(
                f"{label} is not in the Hugging Face cache ({settings.cache_dir}) and offline "
                f"mode is on (HF_HUB_OFFLINE); fetch it while online with "
                f"`priorsep models download {download_id}`")
        layout, commit = found
        folder = client.fetch(repo_id, commit, prefix, layout, online, label, download_id)
        if online and revision != commit:
            client.remember_ref(repo_id, revision, commit)
        fields = {"revision": revision_asked or revision, "commit": commit}
        if layout in ("bag", "levels"):
            base = HubBase(repo_id, revision_asked or revision, commit, prefix)
            if layout == "levels":
                return self._levels(folder / LEVELS_NAME, label, base, depth, **fields)
            return self._bag(folder / BAG_NAME, label, base, depth, **fields)
        try:
            config, info = read_config(folder)
        except ModelFormatError as error:
            raise ModelFormatError(f"{label}: {error}") from None
        return ResolvedModel(label, "hub", config, folder=folder, info=info,
                             files=present_files(folder), **fields)
