"""Turning a user's folder (or ``.zip``) into a list of sampleable images, with a report of what was read and what
was skipped and why.

Layout: the folder is searched recursively; when files sit in first-level subfolders, those subfolders are the class
labels, unless they are the patient or study folders of a DICOM export (see :func:`_dicom_export_reason`). Archives
are extracted into a private temporary folder and their members count as if they lay in the folder that holds the
archive. Nothing here stops on a broken file: it is listed as skipped with its reason.
"""
from __future__ import annotations

import os
import stat
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

import numpy as np

from core.errors import InputFolderError, UnreadableImageError
from core.images.archive import extract_zip
from core.images.readers import ImageReader, default_readers, reader_for
from core.images.readers.dicom import patient_and_study
from core.images.readers.nifti import DEFAULT_SLICE_AXIS
from core.scratch import ScratchFolder
from core.text import escaped

NO_CLASS = "(no class)"
_SYSTEM_NAMES = {"thumbs.db", "desktop.ini", ".ds_store"}

ScanProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class ImageItem:
    """One sampleable 2-D image: a file, or one frame or slice of a multi-image file."""

    key: str  # display path relative to the input, also the sort key (file order never matters)
    path: Path  # where the file is on disk
    frame: int
    label: str
    format: str
    reader: int  # index into the dataset's readers


@dataclass(frozen=True)
class SkippedFile:
    path: str
    reason: str


@dataclass
class ReadReport:
    """What was read per format and class, every skipped file with its reason, and per-file notes."""

    files: Counter = field(default_factory=Counter)  # (format, class) -> files read
    images: Counter = field(default_factory=Counter)  # (format, class) -> images (frames, slices)
    skipped: list[SkippedFile] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)
    labels_note: str = ""  # why the first-level folders were not taken as class labels ("" when they were)
    dropped_samples: Counter = field(default_factory=Counter)  # file key -> samples lost when it failed to decode
    sampling_note: str = ""  # set when sampling: more samples than images, so each image is used several times

    def skip(self, path: str, reason: str) -> None:
        self.skipped.append(SkippedFile(path, reason))

    @property
    def n_files(self) -> int:
        return sum(self.files.values())

    @property
    def n_images(self) -> int:
        return sum(self.images.values())

    def class_counts(self) -> dict[str, int]:
        """Images per class, sorted by class name."""
        counts: Counter = Counter()
        for (_, label), n in self.images.items():
            counts[label] += n
        return dict(sorted(counts.items()))

    def rows(self) -> list[dict]:
        """One row per (format, class): files and images read, for tables."""
        return [{"format": fmt, "class": label, "files": self.files[(fmt, label)],
                 "images": self.images[(fmt, label)]} for fmt, label in sorted(self.files)]

    def headlines(self) -> list[str]:
        """What applies to the whole task, shown before the table: no class labels, images used several times."""
        return [note for note in (self.labels_note, self.sampling_note) if note]

    def to_text(self) -> str:
        """The report for a terminal: every file, class and member name and every reason with control characters
        shown escaped (core.text.escaped), so a name can neither forge a line nor hide text with escape codes."""
        lines = [f"read {self.n_files} files ({self.n_images} images) in {len(self.class_counts())} classes"]
        lines += [escaped(note, 1_000) for note in self.headlines()]
        lines += [f"  {r['format']:<6} {escaped(r['class']):<24} {r['files']:>7} files {r['images']:>8} images"
                  for r in self.rows()]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} files:")
            lines += [f"  {escaped(s.path, 400)}: {escaped(s.reason, 400)}" for s in self.skipped]
        lines += [f"note: {escaped(path, 400)}: {escaped(note, 400)}" for path, note in self.notes]
        if self.dropped_samples:
            lines.append(f"dropped {sum(self.dropped_samples.values()):,} samples of files that failed while "
                         "decoding:")
            lines += [f"  {escaped(key, 400)}: {n:,} samples" for key, n in self.dropped_samples.most_common(10)]
        return "\n".join(lines)


class ImageDataset:
    """The images of one task, ready for sampling. Use as a context manager: it owns the temporary folder that
    archives were extracted into and removes it on close."""

    def __init__(self, items: list[ImageItem], report: ReadReport, readers: list[ImageReader],
                 temporary: ScratchFolder | None = None) -> None:
        self.items = sorted(items, key=lambda item: (item.key, item.frame))
        self.report = report
        self.readers = readers
        self._temporary = temporary

    def __len__(self) -> int:
        return len(self.items)

    def read(self, item: ImageItem) -> np.ndarray:
        """Decode one item to uint8 (H, W) gray or (H, W, 3) RGB; raises :class:`UnreadableImageError` (message
        without the path)."""
        if not item.path.exists():
            raise UnreadableImageError("file disappeared while the run was going on")
        image = self.readers[item.reader].read_frame(item.path, item.frame)
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3) \
                or min(image.shape[:2]) < 1:
            raise UnreadableImageError(f"reader returned an unusable array of shape {image.shape}")
        return image

    def close(self) -> None:
        if self._temporary is not None:
            self._temporary.remove()
            self._temporary = None

    def __enter__(self) -> "ImageDataset":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _outside(path: Path, inside: Path) -> bool:
    """Whether the symbolic link ``path`` leads (through any chain of links) to a place outside the folder
    ``inside`` (already resolved). A dangling link counts by where it points."""
    target = Path(os.path.realpath(path))
    return target != inside and inside not in target.parents


def _walk(root: Path, report: ReadReport) -> list[Path]:
    """All files below root, sorted; symbolic links to folders are not followed (no loops), and links to files
    outside root are skipped (a folder shared for one task must not read files elsewhere on the machine without a
    word). Iterative, so any nesting depth works (os.walk recurses on Python 3.11)."""
    found: list[Path] = []
    inside = Path(os.path.realpath(root))
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(folder) as entries:
                listed = sorted(entries, key=lambda entry: entry.name)
        except OSError as err:
            report.skip(_relative(folder, root), f"cannot list folder ({err.strerror or err})")
            continue
        subfolders = []
        for entry in listed:
            path = Path(entry.path)
            try:
                is_link, is_dir = entry.is_symlink(), entry.is_dir(follow_symlinks=False)
                if is_link and entry.is_dir(follow_symlinks=True):
                    where = " outside the folder" if _outside(path, inside) else ""
                    report.skip(_relative(path, root), f"symbolic link to a folder{where} is not followed")
                elif is_link and _outside(path, inside):
                    report.skip(_relative(path, root), "link to a file outside the folder; not read (copy the file "
                                                       "into the folder to use it)")
                elif is_dir:
                    subfolders.append(path)
                else:
                    found.append(path)
            except OSError as err:
                report.skip(_relative(path, root), f"cannot read ({err.strerror or err})")
        pending.extend(reversed(subfolders))
    return sorted(found, key=lambda path: path.parts)


def special_file_reason(path: Path) -> str | None:
    """Why ``path`` must not be opened (FIFO, device, socket, folder: reading could block forever or never end),
    following symbolic links; None for a regular file."""
    try:
        mode = path.stat().st_mode
    except OSError as err:
        return f"cannot read ({err.strerror or err})"
    if stat.S_ISREG(mode):
        return None
    kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "a folder" if stat.S_ISDIR(mode) else "not a file")
    return f"not a regular file ({kind}); never opened"


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name


def _label_of(relative: PurePosixPath) -> str:
    """The class of a file: its first-level folder, in Unicode NFC (an NFD spelling, as macOS writes names, is the
    same class)."""
    return unicodedata.normalize("NFC", relative.parts[0]) if len(relative.parts) > 1 else NO_CLASS


def _is_dicom_file(path: Path) -> bool:
    """Whether ``path`` is a regular file carrying the DICOM magic ('DICM' at byte 128); never opens a FIFO."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        with open(path, "rb") as handle:
            return handle.read(132)[128:] == b"DICM"
    except OSError:
        return False


def _dicom_export_reason(items: list[ImageItem], dicomdir_at_root: bool) -> str | None:
    """Why the first-level folders are the patients or studies of a DICOM export (PATIENT/STUDY/SERIES/IMAGE) rather
    than classes, or None when they may be classes.

    An export is recognised when the images include DICOM files and a DICOMDIR lies beside the first-level folders,
    or, without a DICOMDIR, when every image is DICOM and every first-level folder is named after the PatientID or
    the StudyInstanceUID of its first file (one header read per folder).
    """
    labelled = [item for item in items if item.label != NO_CLASS]
    if not labelled or not any(item.format == "DICOM" for item in items):
        return None
    if dicomdir_at_root:
        return "a DICOMDIR file lies beside them"
    if any(item.format != "DICOM" for item in items):
        return None
    first: dict[str, ImageItem] = {}
    for item in sorted(labelled, key=lambda item: item.key):
        first.setdefault(item.label, item)
    matched: set[str] = set()
    for label, item in first.items():
        patient, study = patient_and_study(item.path)
        if label == patient:
            matched.add("PatientID")
        elif label == study:
            matched.add("StudyInstanceUID")
        else:
            return None
    folders = f"{len(first)} folder" + ("s" if len(first) != 1 else "")
    return f"every folder name ({folders}) equals the {' or '.join(sorted(matched))} of the DICOM files inside"


def _without_labels(items: list[ImageItem], report: ReadReport, reason: str) -> list[ImageItem]:
    """Put every image in the one class NO_CLASS, recount the report and say why there are no class labels."""
    for counter in (report.files, report.images):
        merged: Counter = Counter()
        for (fmt, _), n in counter.items():
            merged[(fmt, NO_CLASS)] += n
        counter.clear()
        counter.update(merged)
    report.labels_note = ("no class labels: the first-level folders look like patients/studies of a DICOM export "
                          f"({reason})")
    return [replace(item, label=NO_CLASS) for item in items]


class _Scanner:
    def __init__(self, readers: list[ImageReader], report: ReadReport) -> None:
        self.readers = readers
        self.report = report
        self.items: list[ImageItem] = []
        self.dicomdir_at_root = False  # a DICOMDIR beside the first-level folders marks a DICOM export

    def add_file(self, path: Path, key: str, label: str) -> None:
        name = path.name
        if name.upper() == "DICOMDIR" and label == NO_CLASS and _is_dicom_file(path):  # NO_CLASS: at the top level
            self.dicomdir_at_root = True  # an empty or foreign file merely named so does not make an export
        if name.startswith("._") or name.lower() in _SYSTEM_NAMES:
            self.report.skip(key, "system or hidden metadata file")
            return
        try:
            if path.is_symlink() and not path.exists():
                self.report.skip(key, "broken symbolic link")
                return
            special = special_file_reason(path)
            if special:
                self.report.skip(key, special)
                return
            if path.stat().st_size == 0:
                self.report.skip(key, "empty file (0 bytes)")
                return
            with open(path, "rb") as handle:
                head = handle.read(132)
        except OSError as err:
            self.report.skip(key, f"cannot read ({err.strerror or err})")
            return
        reader = reader_for(path, head, self.readers)
        if reader is None:
            suffix = path.suffix.lower() or "no extension"
            self.report.skip(key, f"not an image format this tool reads ({suffix})")
            return
        try:
            frames, note = reader.frame_count(path)
        except UnreadableImageError as err:
            self.report.skip(key, str(err))
            return
        except Exception as err:  # a reader bug must not stop a 1,000-file run
            self.report.skip(key, f"unexpected error while reading ({type(err).__name__}: {err})")
            return
        fmt = reader.format_of(path)
        index = self.readers.index(reader)
        self.items.extend(ImageItem(key, path, frame, label, fmt, index) for frame in range(frames))
        self.report.files[(fmt, label)] += 1
        self.report.images[(fmt, label)] += frames
        if note:
            self.report.notes.append((key, note))


def open_dataset(folder: str | Path, slice_axis: int = DEFAULT_SLICE_AXIS,
                 progress: ScanProgress | None = None, workdir: Path | None = None) -> ImageDataset:
    """Scan one task's images, ``folder`` (a folder or a ``.zip``; the user's or a catalogue task's), into an
    :class:`ImageDataset`.

    ``workdir``: where archives are extracted (a private temporary folder by default, removed on close).
    Raises :class:`InputFolderError` only when the input as a whole is unusable (missing, or no image at all).
    """
    folder = Path(folder)
    report = ReadReport()
    readers = default_readers(slice_axis)
    scanner = _Scanner(readers, report)
    temporary: ScratchFolder | None = None

    def extraction_folder() -> Path:
        nonlocal temporary
        if temporary is None:  # also removes what killed runs left in the same place (core.scratch)
            temporary = ScratchFolder("fingerprint-zip-", workdir)
        return temporary.path

    try:
        if not folder.exists():
            raise InputFolderError(f"{folder}: no such file or folder")
        if not folder.is_dir():
            special = special_file_reason(folder)
            if special:
                raise InputFolderError(f"{folder}: {special}; give a folder of images or a .zip archive")
            if folder.suffix.lower() != ".zip":
                raise InputFolderError(f"{folder}: give a folder of images or a .zip archive")
            root = extraction_folder() / "archive"
            _add_archive(folder, folder.name, root, PurePosixPath(), scanner)
            files: list[Path] = []
        else:
            root = folder
            files = _walk(root, report)
        for done, path in enumerate(files, 1):
            relative = PurePosixPath(_relative(path, root))
            if path.suffix.lower() == ".zip" and (special := special_file_reason(path)):
                report.skip(relative.as_posix(), special)
            elif path.suffix.lower() == ".zip":
                target = extraction_folder() / f"archive{done}"
                _add_archive(path, relative.as_posix(), target, relative.parent, scanner)
            else:
                scanner.add_file(path, relative.as_posix(), _label_of(relative))
            if progress is not None and (done % 50 == 0 or done == len(files)):
                progress(done, len(files))
        if not scanner.items:
            detail = f"; {len(report.skipped)} files skipped, e.g. {escaped(report.skipped[0].path, 400)}: " \
                     f"{escaped(report.skipped[0].reason, 400)}" if report.skipped else ""
            raise InputFolderError(f"{folder}: no readable image found{detail}")
        items = scanner.items
        export_reason = _dicom_export_reason(items, scanner.dicomdir_at_root)
        if export_reason:
            items = _without_labels(items, report, export_reason)
    except BaseException:
        if temporary is not None:
            temporary.remove()
        raise
    return ImageDataset(items, report, readers, temporary)


def _add_archive(archive: Path, key: str, target: Path, placed_in: PurePosixPath, scanner: _Scanner) -> None:
    """Extract an archive and add its members as if they lay in ``placed_in`` (relative to the input root)."""
    try:
        result = extract_zip(archive, target)
    except InputFolderError as err:
        scanner.report.skip(key, str(err).split(": ", 1)[-1])
        return
    for member, reason in result.refused:
        scanner.report.skip(f"{key}!{member}", reason)
    members = {path: PurePosixPath(path.relative_to(target.resolve()).as_posix()) for path in result.extracted}
    wrapper = _wrapper_folder(list(members.values())) if not placed_in.parts else None
    if wrapper is not None:
        scanner.report.notes.append((key, f"the single top-level folder '{wrapper}' is taken as a wrapper: classes "
                                          "come from the folders inside it"))
    for path in sorted(members):
        member = members[path]
        labelled = PurePosixPath(*member.parts[1:]) if wrapper is not None else placed_in / member
        scanner.add_file(path, f"{key}!{member.as_posix()}", _label_of(labelled))


def _wrapper_folder(members: list[PurePosixPath]) -> str | None:
    """The one folder every member of an archive lies in (what 'compress folder' makes), or None. macOS's
    __MACOSX metadata folder does not count."""
    tops = {member.parts[0] for member in members if member.parts and member.parts[0] != "__MACOSX"}
    inside = [member for member in members if member.parts and member.parts[0] != "__MACOSX"]
    if len(tops) == 1 and inside and all(len(member.parts) > 1 for member in inside):
        return tops.pop()
    return None
