"""Issue 22: temporary folders of killed runs (zip extraction, uploads) are removed by the next run, and never while
their run is alive."""
from __future__ import annotations

import io
import signal
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from core.images.dataset import open_dataset

REPO = Path(__file__).resolve().parents[1]

KILLED_ZIP_RUN = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from core.images.dataset import open_dataset

    dataset = open_dataset(sys.argv[1], workdir=Path(sys.argv[2]))  # extracts into a scratch folder there
    print(len(dataset), flush=True)
    time.sleep(600)
""")


def png_bytes(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (32, 32), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def test_a_killed_zip_runs_extraction_is_removed_by_the_next_run_not_while_it_lives(tmp_path):
    archive = tmp_path / "task.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for i in range(4):
            handle.writestr(f"class{i % 2}/img{i}.png", png_bytes(i))
    work = tmp_path / "work"
    work.mkdir()
    run = subprocess.Popen([sys.executable, "-c", KILLED_ZIP_RUN, str(archive), str(work)], cwd=REPO,
                           stdout=subprocess.PIPE, text=True)
    try:
        assert run.stdout.readline().strip() == "4"
        (left,) = list(work.iterdir())
        assert len(list(left.rglob("*.png"))) == 4
        with open_dataset(archive, workdir=work) as live_neighbour:  # another run while the first one lives
            assert len(live_neighbour) == 4
            assert left.is_dir()  # a live run's extraction is not touched
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=30)
    assert left.is_dir()  # kill -9: nothing of the killed run could clean up
    with open_dataset(archive, workdir=work) as next_run:
        assert len(next_run) == 4
        assert [p for p in work.iterdir() if p != next_run._temporary.path] == []  # the leftover is gone
    assert list(work.iterdir()) == []
