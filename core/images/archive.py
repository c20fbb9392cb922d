"""Safe extraction of uploaded ``.zip`` archives.

Refuses absolute and ``..`` member paths, links, encrypted members and archives inside archives (listed as skipped),
and stops at limits on the number of members and the bytes actually written (a zip bomb lies about its sizes, so
the written bytes are counted while streaming).
"""
from __future__ import annotations

import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from core.errors import InputFolderError

MAX_TOTAL_BYTES = 4 * 1024**3
MAX_MEMBERS = 200_000
MAX_RATIO = 200  # uncompressed / compressed of one member; image formats rarely exceed ~20
_CHUNK = 1 << 20


@dataclass
class ExtractionResult:
    """What :func:`extract_zip` wrote and what it refused (archive member name, reason)."""

    extracted: list[Path] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)


def _unsafe_reason(info: zipfile.ZipInfo) -> str | None:
    name = info.filename.replace("\\", "/")
    parts = PurePosixPath(name).parts
    if not parts:
        return "member without a name"
    if name.startswith("/") or (parts and ":" in parts[0]):
        return "absolute path in archive refused"
    if ".." in parts:
        return "'..' in archive path refused (would write outside the extraction folder)"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "symbolic link in archive refused"
    if info.flag_bits & 0x1:
        return "encrypted archive member: decrypt the archive first"
    if name.lower().endswith(".zip"):
        return "archive inside an archive is not opened: extract it first"
    return None


def extract_zip(archive: Path, destination: Path, max_total_bytes: int = MAX_TOTAL_BYTES,
                max_members: int = MAX_MEMBERS) -> ExtractionResult:
    """Extract ``archive`` below ``destination``; raise :class:`InputFolderError` when the archive as a whole is
    unusable (not a zip, too many members, over the size limit)."""
    result = ExtractionResult()
    try:
        bundle = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise InputFolderError(f"{archive.name}: not a readable zip archive ({err})") from None
    with bundle:
        members = [info for info in bundle.infolist() if not info.filename.endswith("/")]
        if len(members) > max_members:
            raise InputFolderError(f"{archive.name}: {len(members):,} members exceed the limit of {max_members:,}")
        written = 0
        root = destination.resolve()
        seen: set[str] = set()
        for info in members:
            reason = _unsafe_reason(info)
            if reason:
                result.refused.append((info.filename, reason))
                continue
            if info.filename in seen:  # a member stored twice would otherwise be sampled twice as often
                result.refused.append((info.filename, "stored twice in the archive; read once"))
                continue
            seen.add(info.filename)
            try:
                target = (root / info.filename.replace("\\", "/")).resolve()
            except (OSError, ValueError) as err:  # ENAMETOOLONG and the like: this member only
                reason = err.strerror if isinstance(err, OSError) and err.strerror else err
                result.refused.append((info.filename, f"cannot extract ({reason})"))
                continue
            if root not in target.parents:
                result.refused.append((info.filename, "path leaves the extraction folder"))
                continue
            if info.compress_size and info.file_size / max(info.compress_size, 1) > MAX_RATIO:
                result.refused.append((info.filename, f"compression ratio above {MAX_RATIO} (possible zip bomb)"))
                continue
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                with bundle.open(info) as source, open(target, "wb") as sink:
                    while chunk := source.read(_CHUNK):
                        written += len(chunk)
                        if written > max_total_bytes:
                            raise InputFolderError(
                                f"{archive.name}: more than {max_total_bytes / 1024**3:.1f} GB when extracted "
                                "(possible zip bomb); extract it yourself and give the folder")
                        sink.write(chunk)
            except InputFolderError:
                target.unlink(missing_ok=True)
                raise
            except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as err:
                try:
                    if target.is_file() and not target.is_symlink():
                        target.unlink(missing_ok=True)
                except OSError:  # a name too long to stat was never written
                    pass
                clash = " (clashes with another member of the same name)" if isinstance(
                    err, (FileExistsError, NotADirectoryError, IsADirectoryError)) else ""
                reason = err.strerror if isinstance(err, OSError) and err.strerror else err
                result.refused.append((info.filename, f"cannot extract{clash} ({reason})"))
                continue
            result.extracted.append(target)
    return result
