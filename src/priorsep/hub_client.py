"""Files of Hugging Face Hub repos: asking the Hub, downloading into its cache, checking them.

Everything that knows `huggingface_hub` lives here; `priorsep.hub` turns model ids into calls.
Files land in the standard cache (`<HF_HUB_CACHE>/models--owner--name/snapshots/<commit>/`),
shared with every other library that uses it, and are checked against the checksum the Hub
announced for them. Only failures to reach the Hub come back as `HubUnavailable`, so that the
caller can fall back to the cache; everything else is a `PriorsepError` a user can act on.

Every exchange with the Hub (a probe, one file's download) runs in a worker thread and must end
within a deadline (`PRIORSEP_HUB_DEADLINE`, 60 s by default): the library's own timeouts bound
only the wait between two bytes, so a server that trickles would otherwise hold a run forever.
The library's retry warnings from those threads are dropped; what failed is said once, by the
error. A download cut off leaves its partial file in the cache's blobs, which the next run
resumes (or refetches, if the server ignores the byte range).
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx2
from huggingface_hub import (
    close_session,
    get_hf_file_metadata,
    hf_hub_download,
    hf_hub_url,
    scan_cache_dir,
)
from huggingface_hub.errors import (
    CacheNotFound,
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.file_download import repo_folder_name
from huggingface_hub.utils import silent_tqdm

from priorsep.errors import (
    CacheError,
    HubUnreachableError,
    ModelFormatError,
    ModelIntegrityError,
    ModelNotCachedError,
    ModelNotFoundError,
)
from priorsep.files import atomic_write_text
from priorsep.hub_config import DEADLINE_VARIABLE, HubSettings
from priorsep.layout import (
    BAG_NAME,
    CARD_NAME,
    CONFIG_NAME,
    LEVELS_NAME,
    MODEL_FILES,
    POSTERIOR_CONFIG_NAME,
    POSTERIOR_NAME,
    SEPARATION_NAME,
)

LAYOUTS = {"model": MODEL_FILES, "bag": (BAG_NAME,), "levels": (LEVELS_NAME,)}
"""The files of each kind of folder; the first one tells the kind."""
OPTIONAL = (CARD_NAME, POSTERIOR_NAME, POSTERIOR_CONFIG_NAME, SEPARATION_NAME)
"""Files a model folder may lack: the card, the amortised posterior and the tuned settings."""
COMMIT = re.compile(r"[0-9a-f]{40}")
T = TypeVar("T")
WORKER_NAME = "priorsep-hub"
"""The name of the threads that talk to the Hub (their library warnings are dropped)."""
logger = logging.getLogger(__name__)


class _DropWorkerChatter(logging.Filter):
    """Drops the library's warnings from the Hub worker threads (retries, resumptions)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.threadName.startswith(WORKER_NAME)
                    and record.levelno < logging.ERROR)


for _name in ("huggingface_hub.file_download", "huggingface_hub.utils._http"):
    logging.getLogger(_name).addFilter(_DropWorkerChatter())


def _one_line(error: BaseException) -> str:
    """The first non-empty line of an error's message (`huggingface_hub`'s span several)."""
    return next((line.strip() for line in str(error).splitlines() if line.strip()),
                type(error).__name__)


class HubUnavailable(Exception):
    """The Hub did not answer usefully (network failure, timeout, 5xx); the text says why."""


class ExchangeTimedOut(Exception):
    """An exchange with the Hub did not end within the deadline; the text says so."""


@dataclass(frozen=True)
class CachedSnapshot:
    """One commit of one model repo in the cache."""

    repo_id: str
    commit: str
    refs: tuple[str, ...]
    """Branches and tags that point at this commit."""
    size_bytes: int
    folder: Path


class HubClient:
    """Probes, downloads and finds the folders of Hub repos under one set of settings.

    A folder is the repo root (`prefix` "") or a subfolder (`prefix` "sub/"); its `layout` is
    "model" or "bag" (see `LAYOUTS`). `label` is how messages name it (`owner/name@main`).
    """

    def __init__(self, settings: HubSettings, verify: bool = True) -> None:
        self.settings = settings
        self.verify = verify

    def notice(self, message: str) -> None:
        if self.settings.notify is not None:
            self.settings.notify(message)
        else:
            logger.warning(message)

    def exchange(self, call: Callable[[], T]) -> T:
        """`call()` in a worker thread, within `settings.deadline` seconds.

        On time-out the library's connections are closed and the worker is left to end on its
        own (at the library's next time-out or error: a thread cannot be stopped from outside);
        a download it had under way stays resumable.

        Raises:
            ExchangeTimedOut: `call` did not return in time.
            whatever `call` raises.
        """
        outcome: dict[str, object] = {}

        def work() -> None:
            try:
                outcome["value"] = call()
            except BaseException as error:  # noqa: BLE001 (re-raised in the caller's thread)
                outcome["error"] = error

        worker = threading.Thread(target=work, name=WORKER_NAME, daemon=True)
        worker.start()
        worker.join(self.settings.deadline)
        if worker.is_alive():
            close_session()
            raise ExchangeTimedOut(f"not done within {self.settings.deadline:g} s, "
                                   f"{DEADLINE_VARIABLE}")
        if "error" in outcome:
            raise outcome["error"]  # type: ignore[misc]
        return outcome["value"]  # type: ignore[return-value]

    def check_cache(self) -> None:
        """Refuse a cache that cannot be used: a file where HF_HOME or the cache folder (or a
        folder above them) should be.

        Raises:
            CacheError: naming the file in the way.
        """
        home = os.environ.get("HF_HOME")
        for folder in (Path(home).expanduser() if home else None, self.settings.cache_dir):
            if folder is None:
                continue
            existing = next((path for path in (folder, *folder.parents)
                             if os.path.exists(path)), None)
            if existing is not None and not existing.is_dir():
                raise CacheError(f"the Hugging Face cache {self.settings.cache_dir} cannot be "
                                 f"used: {existing} is a file, not a folder (move it, or set "
                                 "HF_HOME or HF_HUB_CACHE to a folder)")

    def cache_error(self, error: OSError, what: str) -> CacheError:
        """A one-line `CacheError` for an OSError met while writing the cache."""
        if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            why = "the disk is full"
        elif error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            why = "no permission to write there"
        else:
            why = _one_line(error)
        return CacheError(f"{what} into the Hugging Face cache {self.settings.cache_dir}: {why} "
                          "(nothing half-written is used; free space or fix the folder, or set "
                          "HF_HUB_CACHE elsewhere, then run again)")

    def storage(self, repo_id: str) -> Path:
        """The cache folder of a model repo (the documented `huggingface_hub` cache layout)."""
        return self.settings.cache_dir / repo_folder_name(repo_id=repo_id, repo_type="model")

    def probe(self, repo_id: str, revision: str, prefix: str, label: str) -> tuple[str, str]:
        """Ask the Hub which layout a folder has and which commit `revision` is: (layout, commit).

        One HEAD request per candidate file, no retries, `settings.timeout` seconds between
        bytes and `settings.deadline` for each request.

        Raises:
            HubUnavailable: the Hub did not answer, or answered 429 / 5xx.
            ModelNotFoundError: no such repo, revision or folder, or no access.
        """
        endpoint, timeout = self.settings.endpoint, self.settings.timeout
        for layout, names in LAYOUTS.items():
            url = hf_hub_url(repo_id, prefix + names[0], revision=revision, endpoint=endpoint)
            try:
                metadata = self.exchange(lambda url=url: get_hf_file_metadata(
                    url, timeout=timeout, endpoint=endpoint))
            except ExchangeTimedOut as error:
                raise HubUnavailable(str(error)) from None
            except RemoteEntryNotFoundError:
                continue
            except RevisionNotFoundError:
                raise ModelNotFoundError(f"{repo_id} has no revision {revision!r} (branch, tag "
                                         f"or commit) on {endpoint}") from None
            except GatedRepoError:
                raise ModelNotFoundError(f"{label} is gated on {endpoint}: accept its terms on "
                                         "the Hub and set HF_TOKEN") from None
            except RepositoryNotFoundError:
                raise ModelNotFoundError(f"{label}: no such model repository on {endpoint} (if "
                                         "it is private, set HF_TOKEN)") from None
            except HfHubHTTPError as error:
                status = error.response.status_code
                if status >= 500 or status == 429:
                    raise HubUnavailable(f"it answered HTTP {status}") from None
                raise ModelNotFoundError(f"{label}: {endpoint} answered HTTP {status} for "
                                         f"{prefix + names[0]} (if the repository is private, "
                                         "set HF_TOKEN)") from None
            except httpx2.TimeoutException:
                raise HubUnavailable(f"no answer within {timeout:g} s") from None
            except OfflineModeIsEnabled:
                raise HubUnavailable("offline mode is on (HF_HUB_OFFLINE)") from None
            except httpx2.TransportError as error:
                raise HubUnavailable(f"{type(error).__name__}: {_one_line(error)}") from None
            if metadata.commit_hash is None:
                raise HubUnavailable(f"{url} is not served like the Hub (no X-Repo-Commit "
                                     "header); check HF_ENDPOINT")
            return layout, metadata.commit_hash
        where = f" in {prefix.rstrip('/')}" if prefix else ""
        raise ModelNotFoundError(f"{label} has no {CONFIG_NAME}, {BAG_NAME} or {LEVELS_NAME}"
                                 f"{where}, so it is not a priorsep model")

    def cached_layout(self, repo_id: str, revision: str, prefix: str) -> tuple[str, str] | None:
        """(layout, commit) of a folder the cache holds for `revision`, or None."""
        commit: str | None = revision if COMMIT.fullmatch(revision) else None
        ref = self.storage(repo_id) / "refs" / revision
        if commit is None and ref.is_file():
            commit = ref.read_text(encoding="utf-8").strip()
        if not commit:
            return None
        snapshot = self.storage(repo_id) / "snapshots" / commit / prefix
        for layout, names in LAYOUTS.items():
            required = [name for name in names if name not in OPTIONAL]
            if all((snapshot / name).exists() for name in required):
                return layout, commit
        return None

    def fetch(self, repo_id: str, commit: str, prefix: str, layout: str, online: bool,
              label: str, download_id: str) -> Path:
        """Download the files of a folder at `commit` (or find them in the cache, if not
        `online`), check them, and return the folder in the cache. `download_id` is the id
        that `priorsep models download` would fetch them with.

        Raises:
            ModelNotCachedError, HubUnreachableError, ModelFormatError, ModelIntegrityError,
            or CacheError when the cache cannot be written.
        """
        folder = None
        for name in LAYOUTS[layout]:
            filename = prefix + name
            try:
                path = Path(self.exchange(lambda filename=filename: hf_hub_download(
                    repo_id, filename, revision=commit, cache_dir=self.settings.cache_dir,
                    endpoint=self.settings.endpoint, etag_timeout=self.settings.timeout,
                    local_files_only=not online,
                    tqdm_class=None if self.settings.progress else silent_tqdm)))
            except ExchangeTimedOut as error:
                raise HubUnreachableError(
                    f"{label}: downloading {filename} failed ({error}); run again to resume it, "
                    f"or allow more time on a slow connection with {DEADLINE_VARIABLE}"
                ) from None
            except (RemoteEntryNotFoundError, LocalEntryNotFoundError) as error:
                if name in OPTIONAL:  # welcome, but not needed to load the priors
                    continue
                if isinstance(error, RemoteEntryNotFoundError):
                    raise ModelFormatError(f"{label}: the repository has no {filename}") from None
                if online:
                    raise HubUnreachableError(f"{label}: downloading {filename} failed "
                                              f"({_one_line(error)})") from None
                raise ModelNotCachedError(
                    f"{label}: {filename} is not in the Hugging Face cache "
                    f"({self.settings.cache_dir}); fetch it while online with "
                    f"`priorsep models download {download_id}`") from None
            except (httpx2.TransportError, HfHubHTTPError) as error:
                raise HubUnreachableError(f"{label}: downloading {filename} failed "
                                          f"({type(error).__name__}: {_one_line(error)})"
                                          ) from None
            except OSError as error:
                if error.errno is None and "Consistency check failed" in str(error):
                    raise HubUnreachableError(f"{label}: downloading {filename} failed (the "
                                              "Hub sent fewer bytes than it announced); run "
                                              "again to fetch it afresh") from None
                raise self.cache_error(error, f"{label}: could not download {filename}"
                                       ) from None
            if self.verify:
                verify_blob(path, f"{label}: {filename}")
            folder = folder or path.parent
        return folder

    def remember_ref(self, repo_id: str, revision: str, commit: str) -> None:
        """Record that `revision` is `commit` in the cache's refs/, for later offline runs."""
        ref = self.storage(repo_id) / "refs" / revision
        try:
            if not ref.is_file() or ref.read_text(encoding="utf-8").strip() != commit:
                atomic_write_text(ref, commit)
        except OSError as error:  # a read-only cache still serves this run
            logger.warning("could not record %s@%s in %s: %s", repo_id, revision, ref, error)

    def cached_snapshots(self) -> Iterator[CachedSnapshot]:
        """Every commit of every model repo in the cache, newest first within a repo."""
        try:
            cache = scan_cache_dir(self.settings.cache_dir)
        except CacheNotFound:
            return
        for repo in sorted(cache.repos, key=lambda repo: repo.repo_id):
            if repo.repo_type != "model":
                continue
            for revision in sorted(repo.revisions, key=lambda r: r.last_modified, reverse=True):
                yield CachedSnapshot(repo.repo_id, revision.commit_hash,
                                     tuple(sorted(revision.refs)), revision.size_on_disk,
                                     Path(revision.snapshot_path))


def verify_blob(path: Path, what: str) -> None:
    """Check a cached file against the checksum its cache blob is named after.

    The Hub's ETag, which names the blob, is the file's sha256 for LFS files and its git blob
    sha1 otherwise. A mismatching copy is removed, so that the next run downloads it afresh.

    Raises:
        ModelIntegrityError: naming `what`.
    """
    blob = path.resolve()
    expected = blob.name
    if blob.parent.name != "blobs" or not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", expected):
        return  # a copy (no symlinks on this system) or a mirror's own ETag: nothing to check
    if len(expected) == 64:
        digest, kind = hashlib.sha256(), "sha256"
    else:
        digest, kind = hashlib.sha1(f"blob {blob.stat().st_size}\0".encode()), "git sha1"
    with blob.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != expected:
        blob.unlink(missing_ok=True)
        path.unlink(missing_ok=True)
        raise ModelIntegrityError(
            f"{what} failed its integrity check ({kind} {digest.hexdigest()[:12]}..., the Hub "
            f"announced {expected[:12]}...); the damaged copy was removed from the cache, run "
            "again to download it afresh")
