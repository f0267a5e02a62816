"""Ctrl-C on a long run keeps everything computed so far; a second Ctrl-C leaves no output."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from .conftest import looped_clip, sigint_as_in_a_terminal


@pytest.fixture(scope="module")
def long_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # ~75 s of video; with a given neutral (0-2 s) frame rows appear after 2 s, so most of it is left
    # when the tests interrupt
    return looped_clip("HAP", 40, tmp_path_factory.mktemp("long") / "long.avi")


def frame_count(video: Path) -> int:
    import cv2

    capture = cv2.VideoCapture(str(video))
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))  # exact for MJPG AVI
    capture.release()
    return count


def start(video: Path, out: Path, workers: int = 0) -> subprocess.Popen[str]:
    command = ["run", str(video), "-o", str(out / "w.csv"), "--frames", str(out / "f.csv"), "--workers", str(workers),
               "--neutral", "0-2s"]  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "aupipe", *command],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, preexec_fn=sigint_as_in_a_terminal,
    )  # fmt: skip


def _rows(part: Path) -> int:
    """Complete frame rows at the start of a temporary frame table (its first 256 KiB)."""
    try:
        with open(part, "rb") as handle:
            return max(handle.read(1 << 18).count(b"\n") - 1, 0)  # less the header
    except OSError:  # renamed or removed meanwhile
        return 0


def wait_for_work(process: subprocess.Popen[str], out: Path) -> int:
    """Wait for evidence of progress, not for a fixed time: the frame table's temporary file holds
    frame rows (they come once the neutral's 2 s are processed) while the run goes on. Returns
    the rows seen. The deadline is only a guard against a hung run, however slow the machine."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the run ended before any frame row was written: {process.communicate()}"
        seen = max((_rows(p) for p in out.glob(".f.csv.*.part")), default=0)
        if seen:
            return seen
        time.sleep(0.1)
    process.kill()
    pytest.fail("no frame row within 600 s")


@pytest.mark.parametrize("workers", [1, 2])
def test_first_ctrl_c_keeps_what_was_computed(tmp_path: Path, long_video: Path, workers: int) -> None:
    """One process, and two (the video is split in two spans, whose chunks stream back in order)."""
    process = start(long_video, tmp_path, workers)
    seen = wait_for_work(process, tmp_path)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 130, stderr
    assert "interrupted after" in stderr and "Traceback" not in stderr
    frames = pd.read_csv(tmp_path / "f.csv", usecols=["frame", "time_ms", "AU12_r"])
    windows = pd.read_csv(tmp_path / "w.csv", usecols=["window", "start_ms", "end_ms", "emotion"])
    assert seen <= len(frames) < frame_count(long_video)  # stopped early, with at least the frames seen
    assert frames["frame"].tolist() == list(range(len(frames)))  # complete, in order, no torn rows
    assert frames["AU12_r"].notna().all()
    assert len(windows) > 0 and windows["end_ms"].max() <= frames["time_ms"].max() + 34
    assert not list(tmp_path.glob("*.part"))


@pytest.mark.parametrize("workers", [1, 2])
def test_second_ctrl_c_aborts_without_output(tmp_path: Path, long_video: Path, workers: int) -> None:
    """Two Ctrl-C 0.2 s apart abort the run; if the first has already let the run finish (the files
    are committed together, and a Ctrl-C cannot split that), the outputs are all there and whole.
    A few tries make sure the abort itself is seen."""
    aborted = False
    for attempt in range(3):
        out = tmp_path / str(attempt)
        out.mkdir()
        process = start(long_video, out, workers=workers)
        wait_for_work(process, out)
        process.send_signal(signal.SIGINT)
        time.sleep(0.2)  # signals do not queue: two at once would arrive as one (then the run ends whole)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 130, stderr
        assert "Traceback" not in stderr
        left = sorted(p.name for p in out.iterdir())
        if "no output written" in stderr:
            assert left == []
            aborted = True
            break
        assert left == ["f.csv", "w.csv"] and "interrupted after" in stderr
    assert aborted, "no attempt saw the second Ctrl-C abort the run"


def test_a_mediapipe_object_cut_short_by_ctrl_c_prints_nothing_at_collection() -> None:
    """A Ctrl-C inside a MediaPipe constructor leaves an object whose ``__del__`` fails; the CLI's
    hook drops that "Exception ignored" traceback and keeps every other one."""
    script = (
        "import sys\n"
        "from aupipe.cli.main import main\n"
        "main(['mapping', 'show', 'basic_emotions'])\n"  # installs the CLI's hooks
        "class CutShort:\n"  # as mediapipe's Image: __del__ reads what __init__ never set
        "    def __init__(self):\n"
        "        raise KeyboardInterrupt\n"
        "    def __del__(self):\n"
        "        if self._image_ptr:\n"
        "            pass\n"
        "CutShort.__del__.__module__ = 'mediapipe.tasks.python.vision.core.image'\n"  # (importing it costs seconds)
        "try:\n"
        "    CutShort()\n"
        "except KeyboardInterrupt:\n"
        "    pass\n"
        "class Other:\n"
        "    def __del__(self):\n"
        "        raise ValueError('still shown')\n"
        "Other()\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "_image_ptr" not in done.stderr
    assert "still shown" in done.stderr
