"""Ctrl-C on a long run keeps everything computed so far; a second Ctrl-C leaves no output."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from .conftest import looped_clip


@pytest.fixture(scope="module")
def long_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # ~75 s of video, far longer than the test lets it run
    return looped_clip("HAP", 40, tmp_path_factory.mktemp("long") / "long.avi")


def start(video: Path, out: Path, workers: int = 0) -> subprocess.Popen[str]:
    command = ["run", str(video), "-o", str(out / "w.csv"), "--frames", str(out / "f.csv"), "--workers", str(workers)]
    return subprocess.Popen(
        [sys.executable, "-m", "aupipe", *command],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip


def _has_rows(part: Path) -> bool:
    try:
        with open(part, "rb") as handle:
            return handle.read(1 << 18).count(b"\n") >= 2  # the header and at least one frame row
    except OSError:  # renamed or removed meanwhile
        return False


def wait_for_work(out: Path, seconds: float = 1.0) -> None:
    """Wait for evidence of progress, not for a fixed time: the frame table's temporary file holds
    frame rows (they come once the baseline's 30 s are processed), then ``seconds`` more."""
    deadline = time.time() + 120
    while time.time() < deadline and not any(_has_rows(p) for p in out.glob(".f.csv.*.part")):
        time.sleep(0.1)
    time.sleep(seconds)


@pytest.mark.parametrize("workers", [1, 2])
def test_first_ctrl_c_keeps_what_was_computed(tmp_path: Path, long_video: Path, workers: int) -> None:
    """One process, and two (the video is split in two spans, whose chunks stream back in order)."""
    process = start(long_video, tmp_path, workers)
    wait_for_work(tmp_path)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "interrupted after" in stderr and "Traceback" not in stderr
    frames = pd.read_csv(tmp_path / "f.csv", usecols=["frame", "time_ms", "AU12_r"])
    windows = pd.read_csv(tmp_path / "w.csv", usecols=["window", "start_ms", "end_ms", "emotion"])
    assert 20 < len(frames) < 40 * 56  # stopped early, with the frames done so far
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
        wait_for_work(out, seconds=0.5)
        process.send_signal(signal.SIGINT)
        time.sleep(0.2)  # signals do not queue: two at once would arrive as one
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 130, stderr
        assert "Traceback" not in stderr
        left = sorted(p.name for p in out.iterdir())
        if "no output written" in stderr:
            assert left == []
            aborted = True
            break
        assert left == ["f.csv", "w.csv"] and "interrupted after" in stderr
    assert aborted, "no attempt saw the second Ctrl-C abort the run"
