"""What every command of ``python -m core`` shares: exit codes, the termination signal, output-path checks,
argument types, progress and warning lines, and the backbone chosen by the common options."""
from __future__ import annotations

import argparse
import signal
import sys
import tempfile
from pathlib import Path

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INPUT, EXIT_FINGERPRINT, EXIT_WEIGHTS, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 5, 130
EXIT_TERMINATED = 143
MAX_BATCH_SIZE = 1024


class Terminated(BaseException):
    """Raised from the SIGTERM handler so that temporary folders are removed on the way out, as on Ctrl-C. A
    BaseException, like KeyboardInterrupt: the broad ``except Exception`` that keeps one broken file from stopping a
    run must not turn a termination into "one more unreadable file" and let the run finish and write."""


def on_sigterm(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second signal must not interrupt the clean-up on the way out
    raise Terminated()


def output_problem(path: Path, overwrite: bool) -> str | None:
    """Why ``path`` cannot be written as an output file, or None. Checked before a run, by trying: a probe file is
    created in the folder (permission bits say nothing for root or on read-only file systems)."""
    if path.is_dir():
        return f"{path} is a folder; give a file name"
    if path.exists() or path.is_symlink():
        if not overwrite:
            return f"{path} already exists; choose another name or pass --overwrite"
        if not path.is_file():
            return f"{path} is not a regular file"
    folder = path.parent
    if not folder.is_dir():
        return f"folder {folder} does not exist; create it first"
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as err:
        return f"cannot write into {folder} ({err.strerror or err})"
    return None


def positive_int(limit: int | None = None):
    """argparse type: a whole number >= 1 (and <= limit)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < 1 or (limit is not None and value > limit):
            raise argparse.ArgumentTypeError(f"must be between 1 and {limit:,}" if limit else "must be at least 1")
        return value
    return parse


class ProgressPrinter:
    """One updating line on a terminal, a line every 10 % otherwise (logs stay short)."""

    def __init__(self, stream=sys.stderr) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.last_decile = -1

    def __call__(self, progress) -> None:
        eta = f"{progress.eta_s:.0f} s left" if progress.eta_s is not None else "estimating"
        line = (f"{progress.done:>7,}/{progress.total:,} samples  {progress.images_per_s:5.1f} img/s  {eta}")
        if self.tty:
            self.stream.write("\r" + line + ("\n" if progress.done >= progress.total else ""))
            self.stream.flush()
        elif progress.done * 10 // max(progress.total, 1) > self.last_decile:
            self.last_decile = progress.done * 10 // max(progress.total, 1)
            print(line, file=self.stream, flush=True)


def backbone_from_args(args):
    """The backbone named by the common options (--backbone, --weights, --sha256, --device, --probe, --backend)."""
    from core.features.backbones import load_backbone
    from core.features.inference import engine_for
    backbone = load_backbone(args.backbone, args.weights, args.sha256, args.device, getattr(args, "probe", None),
                             backend=args.backend)
    print(f"backend: {engine_for(backbone).describe()}", file=sys.stderr)
    return backbone


def print_warnings(lines: list[str]) -> None:
    for line in lines:
        print(f"warning: {line}", file=sys.stderr)


def print_notes(lines: list[str]) -> None:
    for line in lines:
        print(f"note: {line}", file=sys.stderr)
