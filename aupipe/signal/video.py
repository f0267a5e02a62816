"""Frames: decode a video file (or a folder of images) into a stream of RGB frames.

Frames are yielded one at a time with the container's own presentation timestamps, so
variable frame rates come out right; nothing holds more than one frame of the video.
"""

from __future__ import annotations

import glob
import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aupipe.signal.native import quiet_native_stderr
from aupipe.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class VideoSettings:
    """How to read frames.

    image_fps: frame rate assumed for a folder of images (they carry no timestamps).
    truncated_tolerance: a video that decodes fewer than this fraction of the frames its
        container declares is reported as truncated or corrupt.
    """

    image_fps: float = 30.0
    truncated_tolerance: float = 0.9


@dataclass(frozen=True)
class VideoInfo:
    """What the container says before decoding: fps (frames/s), declared frame count, size (px)."""

    path: str
    fps: float
    frame_count: int
    width: int
    height: int
    is_image_folder: bool = False


@dataclass(frozen=True)
class Frame:
    """One decoded frame: index (0-based), time_ms (presentation time), rgb (H, W, 3) uint8."""

    index: int
    time_ms: float
    rgb: np.ndarray


def _natural_key(path: Path) -> list[object]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def _image_files(source: Path) -> list[Path]:
    """The images of a folder in natural order (img2 before img10), or a single image file."""
    if source.is_file():
        return [source]
    files = [p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    return sorted(files, key=_natural_key)


def probe(path: str | Path, settings: VideoSettings = VideoSettings()) -> VideoInfo:
    """Open ``path`` (a video, a folder of images or one image) and read its header.

    Raises InputError for anything that is not a readable video or image.
    """
    import cv2

    source = Path(path)
    if not source.exists():
        raise InputError(f"{source}: no such file or folder")
    if source.is_dir() or source.suffix.lower() in IMAGE_SUFFIXES:
        images = _image_files(source)
        if not images:
            raise InputError(f"{source}: folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
        first = cv2.imread(str(images[0]))
        if first is None:
            raise InputError(f"{images[0]}: not a readable image")
        return VideoInfo(str(source), settings.image_fps, len(images), first.shape[1], first.shape[0], True)
    if source.stat().st_size == 0:
        raise InputError(f"{source}: file is empty (0 bytes)")
    with quiet_native_stderr():  # FFmpeg complains on fd 2 about files it cannot open
        capture = cv2.VideoCapture(str(source))
    try:
        if not capture.isOpened():
            raise InputError(
                f"{source}: not a video OpenCV/FFmpeg can read (corrupt, truncated or another kind of file)"
            )
        info = VideoInfo(
            path=str(source),
            fps=float(capture.get(cv2.CAP_PROP_FPS) or 0.0),
            frame_count=max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0), 0),
            width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH) or 0),
            height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0),
        )
    finally:
        capture.release()
    if info.width <= 0 or info.height <= 0:
        raise InputError(f"{source}: the file has no video stream")
    return info


def iter_frames(
    path: str | Path, settings: VideoSettings = VideoSettings(), start: int = 0, stop: int | None = None
) -> Iterator[Frame]:
    """Yield the frames of ``path`` in order, one at a time: frames ``start`` to ``stop`` (exclusive;
    None = to the end), numbered as in the whole video.

    Timestamps come from the container (``CAP_PROP_POS_MSEC``); where it gives none that
    increases, the declared fps fills in. A ``start`` past 0 seeks (frame-accurately, checked;
    where the container cannot seek, the frames before it are decoded and skipped). Raises
    InputError for zero frames, and for a video that stops well short of the frame count its
    container declares (truncated).
    """
    import cv2

    info = probe(path, settings)
    if info.is_image_folder:
        step_ms = 1000.0 / settings.image_fps
        for index, image_path in enumerate(_image_files(Path(path))[start:stop], start=start):
            bgr = cv2.imread(str(image_path))
            if bgr is None:
                raise InputError(f"{image_path}: not a readable image")
            yield Frame(index, index * step_ms, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        return

    capture = _open_at(path, start)
    fallback_step_ms = 1000.0 / info.fps if info.fps > 0 else 1000.0 / 30.0
    index = start
    last_ms = -np.inf
    try:
        while stop is None or index < stop:
            with quiet_native_stderr():
                ok, bgr = capture.read()
            if not ok or bgr is None:
                break
            time_ms = float(capture.get(cv2.CAP_PROP_POS_MSEC))
            if not np.isfinite(time_ms) or time_ms <= last_ms:
                time_ms = index * fallback_step_ms if last_ms < 0 else last_ms + fallback_step_ms
            last_ms = time_ms
            yield Frame(index, time_ms, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            index += 1
    finally:
        capture.release()
    if index == 0:
        raise InputError(f"{path}: no frame could be decoded (zero frames, or a corrupt video)")
    declared = info.frame_count
    reached_end = stop is None or index < stop
    if reached_end and declared > 0 and index < settings.truncated_tolerance * declared and declared - index > 2:
        raise InputError(f"{path}: video ends after {index} of {declared} frames; the file looks truncated or corrupt")


def _open_at(path: str | Path, start: int) -> Any:
    """A ``cv2.VideoCapture`` whose next frame is frame ``start``: seeks, and checks where it landed."""
    import cv2

    with quiet_native_stderr():
        capture = cv2.VideoCapture(str(path))
        if start <= 0:
            return capture
        if capture.set(cv2.CAP_PROP_POS_FRAMES, start) and int(capture.get(cv2.CAP_PROP_POS_FRAMES)) == start:
            return capture
        capture.release()
        capture = cv2.VideoCapture(str(path))  # no exact seek: decode from the start and skip
        for _ in range(start):
            if not capture.grab():
                break
    return capture


def batched(iterable: Iterator[Frame], size: int) -> Iterator[list[Frame]]:
    """Consecutive lists of ``size`` frames (the last may be shorter)."""
    while batch := list(itertools.islice(iterable, size)):
        yield batch


# --------------------------------------------------------------------------------------------
# Finding videos
# --------------------------------------------------------------------------------------------

#: File suffixes taken as videos when searching folders and globs.
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".flv", ".webm", ".mkv", ".m4v", ".mpg", ".mpeg", ".wmv", ".3gp", ".ogv")
#: Suffixes of list files (one video path per line).
LIST_SUFFIXES = (".txt", ".lst", ".list")


def find_videos(inputs: Sequence[str | Path]) -> list[Path]:
    """Videos named by ``inputs``: folders (searched recursively), globs, list files (one path per
    line, relative to the list's folder, ``#`` comments), or video files. In order, without repeats."""
    found: list[Path] = []
    for item in inputs:
        text = str(item)
        path = Path(text)
        if glob.has_magic(text):
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True))
            videos = [p for p in matches if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES]
            if not videos:
                raise InputError(f"{text}: the pattern matches no video ({' '.join(VIDEO_SUFFIXES)})")
            found.extend(videos)
        elif path.is_dir():
            videos = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
            if not videos:
                raise InputError(f"{path}: folder holds no video ({' '.join(VIDEO_SUFFIXES)})")
            found.extend(videos)
        elif path.suffix.lower() in LIST_SUFFIXES and path.is_file():
            found.extend(read_video_list(path))
        elif path.exists():
            found.append(path)  # any other file is taken as a video (a bad one is recorded, not fatal)
        else:
            raise InputError(f"{path}: no such file, folder or pattern")
    unique: dict[str, Path] = {}
    for video in found:
        unique.setdefault(str(video.resolve()), video)
    return list(unique.values())


def read_video_list(path: Path) -> list[Path]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot read the list of videos ({err})") from None
    videos = []
    for number, line in enumerate(lines, 1):
        entry = line.split("#", 1)[0].strip()
        if entry:
            video = Path(entry) if Path(entry).is_absolute() else path.parent / entry
            if not video.is_file():
                raise InputError(f"{path}:{number}: {entry}: no such video")
            videos.append(video)
    if not videos:
        raise InputError(f"{path}: the list names no video")
    return videos
