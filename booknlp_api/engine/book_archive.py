"""The books inside an uploaded ``.zip`` or ``.tar.gz``, read safely.

An archive is refused before anything is inflated when it lists too many members or declares too many
bytes, and while inflating when a member turns out larger than declared, larger than a book may be, or
compresses better than ``max_ratio`` (a zip bomb). Member names that climb out of the archive (``..``,
absolute paths, drive letters), links and device files are refused, and so is any member that is not a
book file (``book_file.BOOK_SUFFIXES``); folders and macOS metadata (``__MACOSX/``, ``._*``) are skipped.
"""

from __future__ import annotations

import io
import posixpath
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from booknlp_api.engine.book_file import BOOK_SUFFIXES
from booknlp_api.engine.errors import InvalidInput
from booknlp_api.engine.text import GZIP_MAGIC
from booknlp_api.vocabulary import ARCHIVE_SUFFIXES

_CHUNK = 1 << 16


class ArchiveRefused(InvalidInput):
    """An archive or member that is unsafe or not a set of books (HTTP 422)."""

    code = "invalid_archive"

    def __init__(self, message: str, member: str | None = None) -> None:
        super().__init__(message)
        self.member = member


class UnsafeArchiveMember(ArchiveRefused):
    code = "unsafe_archive_member"


class ArchiveTooLarge(ArchiveRefused):
    """Too many members, too many bytes, or too high a compression ratio (HTTP 413)."""

    code = "archive_too_large"


@dataclass(frozen=True)
class ArchiveLimits:
    max_members: int
    max_total_bytes: int
    """All members together, inflated."""
    max_member_bytes: int
    max_ratio: float
    """Largest inflated/compressed size ratio of a member, and of the whole archive."""


@dataclass(frozen=True)
class BookFile:
    name: str
    """The member's path in the archive (or the uploaded file's name)."""
    data: bytes


def is_archive(data: bytes, filename: str) -> bool:
    name = filename.lower()
    return name.endswith(ARCHIVE_SUFFIXES) and not name.endswith(".epub")


def books_in_archive(data: bytes, filename: str, limits: ArchiveLimits) -> list[BookFile]:
    """The archive's book files in the archive's order."""
    try:
        if data.startswith(b"PK"):
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                return list(_zip_books(archive, len(data), limits))
        mode = "r:gz" if data.startswith(GZIP_MAGIC) else "r:"
        with tarfile.open(fileobj=io.BytesIO(data), mode=mode) as archive:
            return list(_tar_books(archive, len(data), limits))
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise ArchiveRefused(f"{filename!r} is not a readable .zip or .tar.gz: {exc}") from None


def _zip_books(archive: zipfile.ZipFile, size: int, limits: ArchiveLimits) -> Iterator[BookFile]:
    members = archive.infolist()
    _check_count(len(members), limits)
    _check_total(sum(m.file_size for m in members), size, limits)
    total = 0
    for member in members:
        if member.is_dir() or _skipped(member.filename):
            continue
        mode = member.external_attr >> 16
        _check_name(member.filename, link=stat.S_ISLNK(mode), special=stat.S_IFMT(mode) not in (0, stat.S_IFREG))
        with archive.open(member) as stream:
            data = _read(stream, member.filename, member.compress_size, limits)
        total = _added(total, len(data), size, limits)
        yield BookFile(member.filename, data)


def _tar_books(archive: tarfile.TarFile, size: int, limits: ArchiveLimits) -> Iterator[BookFile]:
    total, count = 0, 0
    for member in archive:  # read as it goes: a tar has no index to count first
        count += 1
        _check_count(count, limits)
        if member.isdir() or _skipped(member.name):
            continue
        _check_name(member.name, link=member.issym() or member.islnk(), special=not member.isfile())
        stream = archive.extractfile(member)
        assert stream is not None
        # A tar has no compressed size per member: the whole archive's size bounds the ratio while reading.
        data = _read(stream, member.name, size, limits)
        total = _added(total, len(data), size, limits)
        yield BookFile(member.name, data)


def _skipped(name: str) -> bool:
    return name.startswith("__MACOSX/") or posixpath.basename(name).startswith("._") or name.endswith(".DS_Store")


def _check_name(name: str, *, link: bool, special: bool) -> None:
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or ".." in parts or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveMember(f"archive member {name!r} points outside the archive", name)
    if link:
        raise UnsafeArchiveMember(f"archive member {name!r} is a link; send the book files themselves", name)
    if special:
        raise UnsafeArchiveMember(f"archive member {name!r} is not a regular file", name)
    if not name.lower().removesuffix(".gz").endswith(BOOK_SUFFIXES):
        raise ArchiveRefused(f"archive member {name!r} is not a book file (.txt, .epub, .html, optionally .gz)",
                             name)


def _check_count(count: int, limits: ArchiveLimits) -> None:
    if count > limits.max_members:
        raise ArchiveTooLarge(f"the archive has more than {limits.max_members} members")


def _check_total(total: int, size: int, limits: ArchiveLimits) -> None:
    if total > limits.max_total_bytes:
        raise ArchiveTooLarge(f"the archive unpacks to more than {limits.max_total_bytes} bytes")
    if size and total / size > limits.max_ratio and total > _CHUNK:
        raise ArchiveTooLarge(f"the archive unpacks to {total / size:.0f} times its size; at most "
                              f"{limits.max_ratio:g} times is accepted")


def _added(total: int, member: int, size: int, limits: ArchiveLimits) -> int:
    _check_total(total + member, size, limits)
    return total + member


def _read(stream: IO[bytes], name: str, compressed: int | None, limits: ArchiveLimits) -> bytes:
    """The member's bytes, read a chunk at a time and stopped as soon as it passes a limit."""
    chunks, read = [], 0
    while chunk := stream.read(_CHUNK):
        read += len(chunk)
        if read > limits.max_member_bytes:
            raise ArchiveTooLarge(f"archive member {name!r} is larger than {limits.max_member_bytes} bytes", name)
        if compressed is not None and read > _CHUNK and read / max(compressed, 1) > limits.max_ratio:
            raise ArchiveTooLarge(f"archive member {name!r} unpacks to more than {limits.max_ratio:g} times its "
                                  "compressed size", name)
        chunks.append(chunk)
    return b"".join(chunks)
