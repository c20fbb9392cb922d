"""Issue 22: signals are never swallowed. SIGTERM while a real command-line process scans a folder of tiny files ends
the run with exit 143 and "terminated", and nothing is written: no fingerprint, no temporary file.

The reader is slowed (10 ms per file, inside its ``frame_count``, where a broad ``except Exception`` keeps one broken
file from stopping a run), so the signal lands inside the reader, where it used to be listed as one more unreadable
file while the run went on and wrote its fingerprint."""
from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from core.cli import EXIT_TERMINATED

REPO = Path(__file__).resolve().parents[1]
N_FILES = 2_000  # 20 s of scanning with the slowed reader: the signal lands while files are being read
SLOW_READER_CLI = """
import sys, time
from core.images.readers.raster import RasterReader

original = RasterReader.frame_count

def slow_frame_count(self, path):
    time.sleep(0.01)
    return original(self, path)

RasterReader.frame_count = slow_frame_count
from core.cli import main
sys.exit(main(sys.argv[1:]))
"""


def tiny_png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.eye(8, dtype=np.uint8) * 200).save(buffer, "PNG")
    return buffer.getvalue()


def test_sigterm_while_scanning_exits_143_and_writes_nothing(tmp_path):
    folder = tmp_path / "many"
    data = tiny_png()
    for label in ("a", "b"):
        (folder / label).mkdir(parents=True)
        for i in range(N_FILES // 2):
            (folder / label / f"{i}.png").write_bytes(data)
    out = tmp_path / "out"
    out.mkdir()
    run = subprocess.Popen([sys.executable, "-c", SLOW_READER_CLI, "fingerprint", str(folder),
                            "-o", str(out / "fp.npz"), "--n", "100"], cwd=REPO, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "TMPDIR": str(tmp_path)})
    lines = []
    for line in run.stderr:  # the scan starts right after this line
        lines.append(line)
        if line.startswith("fingerprinting "):
            break
    time.sleep(2.0)
    assert run.poll() is None, "".join(lines)  # still scanning
    run.send_signal(signal.SIGTERM)
    err = "".join(lines) + run.stderr.read()
    assert run.wait(timeout=60) == EXIT_TERMINATED, err
    assert err.rstrip().endswith("terminated"), err
    assert "wrote" not in err and "read error" not in err.lower()
    assert list(out.iterdir()) == []  # no fingerprint, no half-written temporary file
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("fingerprint-zip-")] == []
