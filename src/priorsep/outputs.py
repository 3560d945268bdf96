"""Where the stems of a track go: the file-name template and the checks made before any work.

A template is a relative path with the keys {track} (the input's name without its extension),
{trackext} (that extension), {source} or its Demucs spelling {stem} (the source), and {ext}
(the output format's extension). `plan_outputs` turns every input into its stem paths and
refuses, before anything is separated, what would fail or clobber later: unknown keys, a
template without the source key, two inputs writing the same file, a folder or a file in the
way, a place that cannot be written, and existing files unless overwriting.
"""

from __future__ import annotations

import os
import string
from collections.abc import Sequence
from pathlib import Path

from priorsep.errors import OutputExistsError, UsageError
from priorsep.files import check_writable

KEYS = ("track", "trackext", "source", "stem", "ext")
DEFAULT_TEMPLATE = "{track}/{source}.{ext}"
STDIN_NAME = "stdin"


def check_template(template: str) -> None:
    """Raise `UsageError` for a template that is not a relative path with known keys naming
    the source."""
    try:
        fields = [field for _, field, spec, conversion in string.Formatter().parse(template)
                  if field is not None]
    except ValueError as error:
        raise UsageError(f"file-name template {template!r}: {error}") from None
    unknown = [field for field in fields if field not in KEYS]
    if unknown:
        raise UsageError(f"file-name template {template!r}: unknown key {{{unknown[0]}}}; "
                         f"use {', '.join('{' + key + '}' for key in KEYS)}")
    if "source" not in fields and "stem" not in fields:
        raise UsageError(f"file-name template {template!r} has no {{source}} (or {{stem}}): "
                         "every stem would go to the same file")
    if not template or Path(template).is_absolute():
        raise UsageError(f"file-name template {template!r} must be a relative path (it goes "
                         "under the output folder)")


def track_name(name: str) -> tuple[str, str]:
    """(track, trackext) of an input: "song.mp3" -> ("song", "mp3"); stdin is ("stdin", "wav")."""
    if name == "-":
        return STDIN_NAME, "wav"
    path = Path(name)
    return path.stem, path.suffix[1:]


def stem_path(out: str | os.PathLike, template: str, name: str, source: str,
              ext: str) -> Path:
    """The file of one stem of input `name`."""
    track, trackext = track_name(name)
    return Path(out) / template.format(track=track, trackext=trackext, source=source,
                                       stem=source, ext=ext)


def plan_outputs(inputs: Sequence[str], out: str | os.PathLike, template: str,
                 sources: Sequence[str], ext: str, overwrite: bool
                 ) -> dict[str, dict[str, Path]]:
    """{input: {source: path}} for every input, after every check (see the module).

    Raises:
        OutputExistsError: outputs exist and `overwrite` is off.
        UsageError: any other problem, naming the first one found.
    """
    check_template(template)
    plan = {name: {source: stem_path(out, template, name, source, ext) for source in sources}
            for name in inputs}
    owner: dict[Path, str] = {}
    for name, paths in plan.items():
        for path in paths.values():
            key = Path(os.path.abspath(path))
            if key in owner:
                hint = ("; put {trackext} in the file-name template to tell them apart"
                        if owner[key] != name else "")
                raise UsageError(f"{owner[key]} and {name} would both write {path}{hint}")
            owner[key] = name
    existing = []
    for paths in plan.values():
        for path in paths.values():
            problem = check_writable(path)
            if problem is not None:
                raise UsageError(f"cannot write {path}: {problem}")
            if path.exists():
                existing.append(path)
    if existing and not overwrite:
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise OutputExistsError(f"{existing[0]}{more} already exist(s)")
    return plan
