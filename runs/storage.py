"""The database artifact storage: a Django Storage backend keeping each file zlib-compressed
in a row of the metadata database (runs.models.StoredFile). The default ARTIFACT_STORAGE:
no setup, and every web process and worker that reaches the database reads every file."""

from __future__ import annotations

import io
import zlib
from datetime import datetime
from typing import IO

from django.core.files.base import File
from django.core.files.storage import Storage
from django.utils import timezone
from django.utils.deconstruct import deconstructible

from runs.models import StoredFile

CHUNK = 64 * 1024


class _Inflating(io.RawIOBase):
    """Reads a zlib stream's plain bytes as they are asked for: a 50 MB manifest is never
    in memory uncompressed."""

    def __init__(self, compressed: bytes) -> None:
        self.compressed = memoryview(compressed)
        self.position = 0
        self.inflater = zlib.decompressobj()
        self.pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self.pending:
            if self.inflater.unconsumed_tail:  # input left over from the last capped call
                self.pending = self.inflater.decompress(self.inflater.unconsumed_tail, CHUNK)
            elif self.position < len(self.compressed):
                chunk = self.compressed[self.position : self.position + CHUNK]
                self.position += len(chunk)
                self.pending = self.inflater.decompress(chunk, CHUNK)
            else:
                return 0
        count = min(len(buffer), len(self.pending))
        buffer[:count] = self.pending[:count]
        self.pending = self.pending[count:]
        return count


@deconstructible
class DatabaseStorage(Storage):
    """Files as StoredFile rows. Read-only files once written (open() is for reading);
    saving under a taken name gets another name, as with Django's other backends."""

    def __init__(self, level: int = 6) -> None:
        self.level = level

    def _open(self, name: str, mode: str = "rb") -> File:
        if mode != "rb":
            raise ValueError(f"the database storage opens files for reading only, not {mode!r}")
        content = StoredFile.objects.filter(name=name).values_list("content", flat=True).first()
        if content is None:
            raise FileNotFoundError(f"no stored file {name!r}")
        return File(io.BufferedReader(_Inflating(bytes(content)), CHUNK), name=name)

    def _save(self, name: str, content: IO) -> str:
        deflater, parts, size = zlib.compressobj(self.level), [], 0
        if hasattr(content, "seek"):
            content.seek(0)
        for chunk in content.chunks() if isinstance(content, File) else iter(lambda: content.read(CHUNK), b""):
            data = chunk.encode() if isinstance(chunk, str) else chunk
            size += len(data)
            parts.append(deflater.compress(data))
        parts.append(deflater.flush())
        StoredFile.objects.update_or_create(
            name=name, defaults={"content": b"".join(parts), "size": size, "modified_at": timezone.now()}
        )
        return name

    def exists(self, name: str) -> bool:
        return StoredFile.objects.filter(name=name).exists()

    def delete(self, name: str) -> None:
        StoredFile.objects.filter(name=name).delete()

    def size(self, name: str) -> int:
        return self._row(name, "size")

    def get_modified_time(self, name: str) -> datetime:
        return self._row(name, "modified_at")

    def listdir(self, path: str) -> tuple[list[str], list[str]]:
        prefix = path.rstrip("/") + "/" if path else ""
        directories, files = set(), []
        for name in StoredFile.objects.filter(name__startswith=prefix).values_list("name", flat=True):
            head, slash, _rest = name[len(prefix) :].partition("/")
            (directories.add(head) if slash else files.append(head))
        return sorted(directories), sorted(files)

    def _row(self, name: str, field: str):
        value = StoredFile.objects.filter(name=name).values_list(field, flat=True).first()
        if value is None:
            raise FileNotFoundError(f"no stored file {name!r}")
        return value
