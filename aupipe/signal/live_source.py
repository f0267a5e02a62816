"""Live sources: a camera, a stream URL or a file played at its own pace, read in a thread.

The reader thread puts each frame, with the moment it was captured, into a queue of at most
``queue_frames`` frames. When processing falls behind and the queue is full, the oldest waiting
frame is dropped and counted (``drop``, the default): latency stays bounded, never a growing
backlog. With ``drop`` False the reader waits instead (files only: nothing is lost, latency
grows; what tests use to compare a live run with a file run).

Timestamps: a camera's or a stream's frames get ``time_ms`` = milliseconds since the source
opened (wall clock, ``time.monotonic``); a file's keep their own presentation times, and with
``realtime`` a frame is released when the wall clock reaches it (a 30 fps file comes at 30 fps).
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from aupipe.errors import InputError, SettingsError
from aupipe.signal import video

__all__ = ["Captured", "LiveSource", "SourceSettings", "describe_source"]


@dataclass(frozen=True)
class SourceSettings:
    """queue_frames: frames that may wait for processing (older ones are dropped when full);
    drop: drop frames when behind (False: a file's reader waits; refused for cameras/streams);
    realtime: play a file at its own pace (False: as fast as it can be processed);
    open_timeout_s: how long a camera or stream may take to give its first frame (s)."""

    queue_frames: int = 4
    drop: bool = True
    realtime: bool = True
    open_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.queue_frames < 1 or not self.open_timeout_s > 0:
            raise SettingsError("queue_frames must be >= 1 and open_timeout_s > 0")


@dataclass(frozen=True)
class Captured:
    """A frame as it arrived: ``frame`` (index, time_ms, rgb), ``captured_s`` (``time.monotonic``
    when it was read) and ``wall_time_s`` (``time.time`` then, seconds since the epoch)."""

    frame: video.Frame
    captured_s: float
    wall_time_s: float


def describe_source(source: str | int | Path) -> tuple[str, str | int]:
    """("camera", index), ("stream", url) or ("file", path) for a source given as a camera
    index, a URL (``scheme://...``) or a path; InputError for a path that does not exist."""
    if isinstance(source, int) or (isinstance(source, str) and source.isdigit()):
        return "camera", int(source)
    text = str(source)
    if "://" in text:
        return "stream", text
    if not Path(text).exists():
        raise InputError(f"{text}: no such file (a live source is a camera index, a stream URL or a file)")
    return "file", text


class LiveSource:
    """Frames of one source from a reader thread (module doc). Use as a context manager;
    ``batches()`` yields the frames waiting at each moment (at least one), until the source ends.
    ``n_read`` / ``n_dropped``: frames read and dropped so far; ``end_reason``: why it ended."""

    def __init__(self, source: str | int | Path, settings: SourceSettings = SourceSettings()) -> None:
        self.kind, self.target = describe_source(source)
        if self.kind == "file" and not settings.realtime:  # as fast as it goes: waiting costs nothing
            settings = dataclasses.replace(settings, drop=False, queue_frames=max(settings.queue_frames, 64))
        if self.kind != "file" and not settings.drop:
            raise SettingsError("a camera or a stream cannot wait for processing: keep dropping frames on")
        self.settings = settings
        self.n_read = 0
        self.n_dropped = 0
        self.end_reason = ""
        self._queue: queue.Queue[Captured | None] = queue.Queue(maxsize=settings.queue_frames)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, name="aupipe-live-reader", daemon=True)
        self._error: BaseException | None = None

    def __enter__(self) -> LiveSource:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the reader (it finishes its current frame)."""
        self._stop.set()
        while True:  # unblock a reader waiting on a full queue
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout=5.0)

    def _put(self, item: Captured | None) -> None:
        """Queue ``item``. With ``drop``, a full queue loses its oldest frame at once (counted):
        the reader never waits for processing. Without it, and for the end mark, it waits."""
        if item is not None and self.settings.drop:
            while True:
                try:
                    self._queue.put_nowait(item)
                    return
                except queue.Full:
                    try:
                        self._queue.get_nowait()
                        with self._lock:
                            self.n_dropped += 1
                    except queue.Empty:
                        pass
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _frames(self) -> Iterator[video.Frame]:
        if self.kind == "file":
            yield from video.iter_frames(self.target)  # type: ignore[arg-type]
            self.end_reason = "the file ended"
            return
        import cv2

        capture = cv2.VideoCapture(self.target)
        if not capture.isOpened():
            raise InputError(f"{self.target}: cannot open this {self.kind}")
        start, index = time.monotonic(), 0
        try:
            while not self._stop.is_set():
                ok, bgr = capture.read()
                if not ok:
                    if index == 0 and time.monotonic() - start < self.settings.open_timeout_s:
                        time.sleep(0.05)
                        continue
                    self.end_reason = (
                        f"the {self.kind} stopped giving frames" if index else f"the {self.kind} gave no frame"
                    )
                    return
                yield video.Frame(index, (time.monotonic() - start) * 1000.0, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                index += 1
        finally:
            capture.release()

    def _read(self) -> None:
        start_s: float | None = None
        first_ms = 0.0
        try:
            for frame in self._frames():
                if self._stop.is_set():
                    self.end_reason = "stopped"
                    break
                if self.kind == "file" and self.settings.realtime:
                    if start_s is None:
                        start_s, first_ms = time.monotonic(), frame.time_ms
                    wait_s = start_s + (frame.time_ms - first_ms) / 1000.0 - time.monotonic()
                    if wait_s > 0:
                        time.sleep(wait_s)
                with self._lock:
                    self.n_read += 1
                self._put(Captured(frame, time.monotonic(), time.time()))
        except BaseException as err:  # surfaced in batches(), in the caller's thread
            self._error = err
        self._put(None)

    def batches(self) -> Iterator[list[Captured]]:
        """The frames waiting at each moment (oldest first, at least one), until the source ends."""
        while True:
            item = self._queue.get()
            batch: list[Captured] = []
            while item is not None:
                batch.append(item)
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                yield batch
            if item is None:
                if self._error is not None:
                    raise self._error
                return
