"""A run's artifacts in the artifact storage (storages["artifacts"], ARTIFACT_STORAGE):
what the worker stores after each dbt invocation, the index rows (RunArtifact) that list
them, and serving them by allowlisted name only, never a user path.

Keys are `runs/<run id>/<invocation>/<name>`: name relative to dbt's target path
(`manifest.json`, `compiled/<package>/models/x.sql`) or `dbt.log`; invocation counts the
run's dbt invocations from 1. A run serves each name from its latest invocation."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from django.core.files import File
from django.core.files.storage import Storage, storages
from django.http import FileResponse, Http404

from dbtlib.artifacts import DBT_LOG, DOWNLOADABLE
from dbtlib.invocation import DbtInvocation
from kernel.security import mask_secrets
from runs.models import NodeResult, Run, RunArtifact

COMPILED_SQL = "compiled.sql"
COMPILED_PREFIX = "compiled/"
# Artifacts a page shows (runs/<id>/artifacts/<name>/view/), by file name; larger ones and
# any that are not UTF-8 text are offered as a download only.
TEXT_SUFFIXES = (".sql", ".log", ".json", ".yml", ".yaml", ".txt", ".md")
ARTIFACT_PAGE_MAX_BYTES = 512 * 1024


def artifact_storage() -> Storage:
    return storages["artifacts"]


def artifact_key(run_id: int, invocation: int, name: str) -> str:
    return f"runs/{run_id}/{invocation}/{name}"


def _written(invocation: DbtInvocation) -> Iterable[tuple[str, Path]]:
    """(name, local path) of each regular file of an invocation that the storage keeps; a
    symlink (a package or hook could plant one to /proc/self/environ) is never followed."""
    target = invocation.target_path
    candidates = [(name, target / name) for name in DOWNLOADABLE if name != DBT_LOG]
    candidates += [(p.relative_to(target).as_posix(), p) for p in sorted((target / "compiled").rglob("*.sql"))]
    candidates.append((DBT_LOG, invocation.log_path / DBT_LOG))
    for name, path in candidates:
        if path.is_file() and not path.is_symlink():
            yield name, path


def store_invocation(run_id: int, number: int, invocation: DbtInvocation, log: Callable[[str], None]) -> bool:
    """Store what invocation `number` of the run wrote and index it; False (with a warning
    in the run's log) when the storage failed: its files then stay on this host."""
    storage, rows = artifact_storage(), []
    try:
        for name, path in _written(invocation):
            with path.open("rb") as content:
                key = storage.save(artifact_key(run_id, number, name), File(content, name=path.name))
            rows.append(RunArtifact(run_id=run_id, invocation=number, name=name, key=key, size=path.stat().st_size))
        RunArtifact.objects.bulk_create(rows)
    except Exception as exc:  # noqa: BLE001 - a storage outage must not change the run's outcome
        where = invocation.target_path.parent
        log(
            mask_secrets(
                f"warning: could not store the artifacts of dbt invocation {number} ({exc}); they stay in {where}"
            )
        )
        return False
    return True


def delete_artifacts(run_ids: Iterable[int]) -> int:
    """Delete the stored files of these runs and their index rows; how many files went."""
    storage, rows = artifact_storage(), RunArtifact.objects.filter(run_id__in=list(run_ids))
    keys = list(rows.values_list("key", flat=True))
    for key in keys:
        storage.delete(key)
    rows.delete()
    return len(keys)


def stored_names(run: Run) -> list[str]:
    """The downloadable artifacts the run has, from the index (the storage is not listed)."""
    names = set(RunArtifact.objects.filter(run=run, name__in=DOWNLOADABLE).values_list("name", flat=True))
    if not names and not run.artifacts.exists():
        names = {name for name in DOWNLOADABLE if _unindexed_file(run, name)}
    return [name for name in DOWNLOADABLE if name in names]


def indexed_paths(run: Run, invocation: int | None = None) -> list[str]:
    """The stored artifact paths of the run (of one invocation when given), from the index:
    dbt's JSON artifacts and compiled SQL files, sorted (dbt.log is served but, as in dbt
    Cloud's list, not listed)."""
    rows = RunArtifact.objects.filter(run=run).exclude(name=DBT_LOG)
    if invocation is not None:
        rows = rows.filter(invocation=invocation)
    names = set(rows.values_list("name", flat=True))
    return sorted(name for name in names if name in DOWNLOADABLE or name.startswith(COMPILED_PREFIX))


def _unindexed_file(run: Run, name: str) -> Path | None:
    """A file of a run that ended before the artifact storage existed (it has no index rows):
    still in this host's RUNS_DIR (until retention) if this host ran it; symlinks and paths
    outside its target never."""
    if not run.target_path:
        return None
    target = Path(run.target_path)
    path = target / name
    if path.is_symlink() or not path.is_file() or not path.resolve().is_relative_to(target.resolve()):
        return None
    return path


@dataclass(frozen=True)
class OpenedArtifact:
    """An artifact's stored file, open for reading, under the file name it is served as."""

    content: IO[bytes]
    size: int
    filename: str


def open_artifact(run: Run, name: str, node: str = "", invocation: int | None = None) -> OpenedArtifact:
    """An allowlisted artifact of the run (COMPILED_SQL needs ?node=<unique_id>; a stored
    `compiled/…` path is served by its index row), opened in the storage: of `invocation`
    when given (a job step's, RunStep.invocation), else of the latest that wrote it."""
    if name in DOWNLOADABLE:
        stored, missing = name, f"This run has no {name}."
    elif name == COMPILED_SQL:
        stored = NodeResult.objects.filter(run=run, unique_id=node).values_list("compiled_path", flat=True).first()
        missing = "No compiled SQL for that node in this run."
    elif name.startswith(COMPILED_PREFIX) and name.endswith(".sql"):
        stored, missing = name, f"This run has no {name}."
    else:
        raise Http404(f"{name!r} is not a downloadable artifact ({', '.join((*DOWNLOADABLE, COMPILED_SQL))}).")
    rows = RunArtifact.objects.filter(run=run, name=stored)
    if invocation is not None:
        rows = rows.filter(invocation=invocation)
    artifact = rows.order_by("-invocation").first() if stored else None
    if artifact is not None:
        try:
            content, size = artifact_storage().open(artifact.key), artifact.size
        except FileNotFoundError:
            raise Http404(f"This run's {name} is no longer stored.") from None
    elif stored and invocation is None and not run.artifacts.exists() and (path := _unindexed_file(run, stored)):
        content, size = path.open("rb"), path.stat().st_size
    else:
        raise Http404(missing)
    return OpenedArtifact(content=content, size=size, filename=PurePosixPath(stored).name)


def artifact_response(run: Run, name: str, node: str = "", invocation: int | None = None) -> FileResponse:
    """open_artifact()'s file as a download, streamed from the storage."""
    artifact = open_artifact(run, name, node, invocation)
    content_type = "application/json" if artifact.filename.endswith(".json") else "text/plain; charset=utf-8"
    response = FileResponse(artifact.content, as_attachment=True, filename=artifact.filename, content_type=content_type)
    response["Content-Length"] = str(artifact.size)
    return response


def artifact_text(artifact: OpenedArtifact) -> tuple[str | None, str]:
    """The artifact's text for its page, or None and why it is a download only: not a text
    file (by name, or its bytes are not UTF-8 text), or larger than ARTIFACT_PAGE_MAX_BYTES."""
    if not artifact.filename.endswith(TEXT_SUFFIXES):
        return None, "This file is not text"
    limit = f"too large to show here ({artifact.size:,} bytes, more than {ARTIFACT_PAGE_MAX_BYTES:,})"
    if artifact.size > ARTIFACT_PAGE_MAX_BYTES:
        return None, f"This file is {limit}"
    data = artifact.content.read(ARTIFACT_PAGE_MAX_BYTES + 1)
    if len(data) > ARTIFACT_PAGE_MAX_BYTES:
        return None, f"This file is {limit}"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None, "This file is not text (it is not UTF-8)"
    if "\x00" in text:
        return None, "This file is not text (it holds NUL bytes)"
    return text, ""
