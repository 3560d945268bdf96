"""Model ids in, model folders and priors out: the entry points of the resolver, and the list of
the models on this machine.

`resolve_model` finds the files of a model id (see `priorsep.resolver` for the id grammar:
bundled names, local folders, bags, per-level folders, Hub repos `owner/name[@revision]`),
`load_resolved` loads what it found, `load_priors` does both; `list_models` lists the bundled
models and the priorsep models in the Hugging Face cache.

Hub settings are read from the environment each time a model is resolved: HF_ENDPOINT,
HF_HUB_CACHE or HF_HOME, HF_HUB_OFFLINE, HF_HUB_ETAG_TIMEOUT, PRIORSEP_HUB_DEADLINE, and
HF_TOKEN (read by `huggingface_hub`). When the Hub cannot be reached, a cached copy is used
with a notice.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from priorsep.config import DEFAULT_MODEL
from priorsep.errors import (
    ModelFormatError,
    PriorsepError,
    UsageError,
)
from priorsep.hub_client import BAG_NAME, HubClient
from priorsep.hub_config import HubSettings, Notify, hub_settings
from priorsep.nn.levels import NearestLevelPriors, PriorLevel
from priorsep.nn.prior import CombinedPriors, SourcePriors
from priorsep.resolver import HUB_ID, ResolvedModel, Resolver, bundled_names_in
from priorsep.storage import (
    CONFIG_NAME,
    POSTERIOR_NAME,
    build_model,
    read_config,
)

__all__ = ["BAG_NAME", "DEFAULT_MODEL", "HubSettings", "ModelEntry", "ResolvedModel",
           "bundled_names", "hub_settings", "list_models", "load_priors", "load_resolved",
           "resolve_model"]


WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
"""Bundled models: one model folder per name."""


def bundled_names() -> list[str]:
    """Names of the models shipped in `WEIGHTS_DIR`."""
    return bundled_names_in(WEIGHTS_DIR)


def resolve_model(model_id: str = DEFAULT_MODEL, *, revision: str | None = None,
                  offline: bool | None = None, timeout: float | None = None,
                  notify: Notify | None = None, progress: bool = False) -> ResolvedModel:
    """Find (downloading if needed) the model folders of `model_id`; see `priorsep.resolver`.

    Args:
        model_id: bundled name, local path, `owner/name[@revision]`, a comma-separated list of
            these, or a bag file.
        revision: branch, tag or commit of a Hub id that names none.
        offline: never contact the Hub; None reads HF_HUB_OFFLINE.
        timeout: seconds to wait for the Hub; None reads HF_HUB_ETAG_TIMEOUT (default 10).
        notify: receives notices (a fallback to the cache); None logs them as warnings.
        progress: show `huggingface_hub`'s download bars.

    Raises:
        ModelNotFoundError: no such bundled model, folder, repository, revision or source.
        ModelNotCachedError: offline, and the Hub model is not cached.
        HubUnreachableError: the Hub did not answer and the model is not cached.
        ModelIntegrityError: a downloaded file does not match its checksum (the copy is removed).
        ModelFormatError: a file is missing or does not parse (the message names it).
        UsageError: the sources cannot be combined (sample rates differ, names repeat, ...).
    """
    model_id = model_id.strip()
    if revision is not None:
        match = HUB_ID.fullmatch(model_id)
        if match is None:
            raise UsageError(f"a revision applies to a Hub id owner/name, not to {model_id!r}")
        if match["revision"] not in (None, revision):
            raise UsageError(f"{model_id} already names revision {match['revision']!r}")
        model_id = f"{match['repo']}@{revision}"
    settings = hub_settings(offline, timeout, notify, progress)
    return Resolver(HubClient(settings), WEIGHTS_DIR).resolve(model_id, Path.cwd(), depth=0)


def load_resolved(resolved: ResolvedModel,
                  device: str | torch.device = "cpu") -> SourcePriors | CombinedPriors:
    """Load the priors of a resolved model (eval mode, on `device`)."""
    try:
        if resolved.folder is not None:
            return build_model(resolved.config, resolved.folder, device)
        parts = [build_model(part.config, part.folder, device) for part in resolved.parts]
        if resolved.levels:
            return NearestLevelPriors([PriorLevel(sigma, part) for sigma, part
                                       in zip(resolved.levels, parts, strict=True)]
                                      ).to(device).eval()
    except ModelFormatError as error:
        raise type(error)(f"{resolved.model_id}: {error}") from None
    return CombinedPriors(parts, resolved.selection).to(device).eval()


def load_priors(model_id: str = DEFAULT_MODEL, device: str | torch.device = "cpu", *,
                revision: str | None = None, offline: bool | None = None,
                timeout: float | None = None, notify: Notify | None = None,
                progress: bool = False) -> SourcePriors | CombinedPriors:
    """Resolve `model_id` (see `resolve_model`) and load its priors.

    Returns:
        `SourcePriors` for one model, `CombinedPriors` for a list or a bag; both take
        `log_prob(sources (batch, n_sources, time), sigma) -> (batch, n_sources)`.
    """
    resolved = resolve_model(model_id, revision=revision, offline=offline, timeout=timeout,
                             notify=notify, progress=progress)
    return load_resolved(resolved, device)


@dataclass(frozen=True)
class ModelEntry:
    """One row of `list_models`."""

    model_id: str
    kind: str
    """"bundled" or "hub"."""
    revisions: tuple[str, ...]
    """Branches and tags that point at this commit in the cache."""
    commit: str | None
    sources: tuple[str, ...]
    sample_rate: int | None
    size_bytes: int
    path: Path
    problem: str | None = None
    """Why the model cannot be used as it is on disk, if it cannot."""
    family: str | None = None
    """The prior family ("flowavenet", "score", ...; "mixed" for a bag of several)."""
    encoder: bool = False
    """Whether the model carries an amortised posterior encoder (the `posterior` method)."""

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        values["path"] = str(self.path)
        return values


def _folder_size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def _is_priorsep_snapshot(folder: Path) -> bool:
    if (folder / BAG_NAME).is_file():
        return True
    try:
        config = json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and config.get("library") == "priorsep"


def list_models(cache_dir: Path | None = None) -> list[ModelEntry]:
    """The bundled models, then every priorsep model in the Hugging Face cache.

    Never networked; cached files are read but not hashed. Repos of other libraries are skipped.
    """
    entries = []
    for name in bundled_names():
        folder = WEIGHTS_DIR / name
        try:
            config, _ = read_config(folder)
        except PriorsepError as error:
            entries.append(ModelEntry(name, "bundled", (), None, (), None, _folder_size(folder),
                                      folder, str(error)))
            continue
        entries.append(ModelEntry(name, "bundled", (), None, config.sources, config.sample_rate,
                                  _folder_size(folder), folder, family=config.family,
                                  encoder=(folder / POSTERIOR_NAME).is_file()))
    settings = hub_settings(offline=True)
    if cache_dir is not None:
        settings = dataclasses.replace(settings, cache_dir=Path(cache_dir))
    client = HubClient(settings, verify=False)
    resolver = Resolver(client, WEIGHTS_DIR)
    for snapshot in client.cached_snapshots():
        if not _is_priorsep_snapshot(snapshot.folder):
            continue
        sources, sample_rate, problem, family = (), None, None, None
        encoder = False
        try:
            resolved = resolver.resolve(f"{snapshot.repo_id}@{snapshot.commit}", Path.cwd(), 0)
            sources, sample_rate = resolved.sources, resolved.config.sample_rate
            families = {part.config.family for part in resolved.parts} or {
                resolved.config.family}
            family = families.pop() if len(families) == 1 else "mixed"
            encoder = resolved.folder is not None and POSTERIOR_NAME in resolved.files
        except PriorsepError as error:
            problem = str(error)
        entries.append(ModelEntry(snapshot.repo_id, "hub", snapshot.refs, snapshot.commit,
                                  sources, sample_rate, snapshot.size_bytes, snapshot.folder,
                                  problem, family, encoder))
    return entries
