"""Shared fixtures: real sample clips analysed once per test session with the real model."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data" / "samples"
CREMAD = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")


def clip(emotion: str) -> Path:
    """Path of the CREMA-D sample clip of actor 1001 with ``emotion`` (ANG, HAP, NEU ...)."""
    return SAMPLES / f"1001_DFA_{emotion}_XX.flv"


def clip_frames(emotion: str) -> list:
    """Every frame (BGR arrays) of the CREMA-D sample clip ``emotion``."""
    import cv2

    capture = cv2.VideoCapture(str(clip(emotion)))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def write_clip(path: Path, frames: Iterable, fourcc: str = "MJPG", fps: float = 30.0) -> Path:
    """Write BGR ``frames`` (all one size) to ``path`` with OpenCV's ``fourcc`` codec."""
    import cv2

    frames = iter(frames)
    first = next(frames)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, first.shape[1::-1])
    for frame in (first, *frames):
        writer.write(frame)
    writer.release()
    return path


def looped_clip(emotion: str, loops: int, path: Path) -> Path:
    """The CREMA-D sample clip ``emotion`` ``loops`` times over, as MJPG AVI at 30 fps (frame-exact seeking)."""
    frames = clip_frames(emotion)
    return write_clip(path, (frame for _ in range(loops) for frame in frames))


@pytest.fixture(scope="session")
def analysed() -> dict[str, object]:
    """``aupipe.analyze`` of every sample clip, keyed by emotion code, 'single_face', 'no_face'."""
    import warnings

    import aupipe

    results: dict[str, object] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", aupipe.AupipeWarning)
        for emotion in CREMAD:
            results[emotion] = aupipe.analyze(clip(emotion))
        results["single_face"] = aupipe.analyze(SAMPLES / "single_face.mp4")
        results["no_face"] = aupipe.analyze(SAMPLES / "no_face.mp4")
    return results


@pytest.fixture
def ctrl_c_as_in_a_terminal() -> Iterable[None]:
    """Ctrl-C raises KeyboardInterrupt in this process for the test, as in an interactive terminal:
    a test run started as a background job without job control inherits SIGINT ignored, and aupipe
    rightly keeps ignoring what its parent told it to ignore."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def sigint_as_in_a_terminal() -> None:
    """``preexec_fn`` for a child that is to be stopped with Ctrl-C: SIGINT at its default, as a
    terminal gives it, even when the test run itself was started with SIGINT ignored."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
