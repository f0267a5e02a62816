"""One long video on every core: the landmark stage split into time spans over worker processes.

Decode + FaceLandmarker + normalisation is about 95% of a run. Here the video is cut into
spans of frames; each worker process opens its own landmarker and processes one span, starting
``overlap_s`` before it so that face tracking has settled by the span's first frame (those
warm-up frames are dropped). The raw frame tables come back in video order and the later stages
(AUs with their baseline and filters, windows, spotting, mapping) run on them in the calling
process exactly as in a one-process run, so windows and events across span borders are exact;
only the landmarks of a border's first frames can differ, within the tracker's warm-up
(docs/performance.md quantifies it).
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import os
import queue
import signal
import sys
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aupipe.signal import landmarks
from aupipe.signal import video
from aupipe.signal.native import quiet_native_stderr
from aupipe.errors import AupipeError, AupipeWarning
from aupipe.chain.settings import ParallelSettings, PipelineSettings
from aupipe.chain.frames import frame_table, needs_face_hog, stream_frames, warn_coverage


@dataclass(frozen=True)
class Span:
    """Frames ``start`` to ``stop`` (exclusive; None = to the end), read from ``read_from`` <= start."""

    start: int
    stop: int | None
    read_from: int


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def resolve_workers(workers: int | None) -> int:
    """``None`` or 0 = every available core; otherwise ``workers`` (at least 1)."""
    return available_cores() if not workers else max(1, int(workers))


def plan_spans(info: video.VideoInfo, workers: int, settings: ParallelSettings = ParallelSettings()) -> list[Span]:
    """Cut a video of ``info.frame_count`` frames into spans for ``workers`` processes.

    A whole number of spans per worker, none longer than ``max_span_s`` nor shorter than
    ``min_span_s``; one span (no split) for one worker, short videos, or an unknown length. The
    last span is open-ended, since a container's declared frame count can be short.
    """
    fps = info.fps if info.fps > 0 else 30.0
    n_frames = info.frame_count
    duration_s = n_frames / fps
    if workers <= 1 or n_frames <= 0:
        return [Span(0, None, 0)]
    n_spans = math.ceil(duration_s / settings.max_span_s / workers) * workers
    n_spans = min(n_spans, int(duration_s // settings.min_span_s))
    if n_spans <= 1:
        return [Span(0, None, 0)]
    bounds = np.round(np.linspace(0, n_frames, n_spans + 1)).astype(int)
    overlap = round(settings.overlap_s * fps)
    starts = bounds[:-1]
    stops: list[int | None] = [*(int(b) for b in bounds[1:-1]), None]
    return [Span(int(s), stop, max(0, int(s) - overlap)) for s, stop in zip(starts, stops, strict=True)]


_results: Any = None  # a worker's queue to the parent (set by _init_worker)


def _init_worker(results: Any) -> None:
    """Worker start-up: Ctrl-C is the parent's to handle; MediaPipe loads once per process."""
    global _results
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    thread_lock_for_tqdm()
    _results = results
    landmarks.import_mediapipe()


def thread_lock_for_tqdm() -> None:
    """tqdm would make a multiprocessing lock (a named semaphore) in each worker, which a worker
    stopped by the parent cannot release; its bars here are disabled, a thread lock will do."""
    import threading

    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())


def span_frames(
    path: str | Path, span: Span, settings: PipelineSettings = PipelineSettings()
) -> Iterator[pd.DataFrame]:
    """The raw frame table (``pipeline.frame_table``) of one span in chunks, from a fresh landmarker.

    Frames from ``span.read_from`` on are processed so that tracking settles; only those from
    ``span.start`` on are yielded.
    """
    with quiet_native_stderr(), landmarks.open_landmarker(settings.landmarks) as landmarker:
        frames = video.iter_frames(path, settings.video, span.read_from, span.stop)
        for _, batch in landmarks.detect_batches(
            landmarker, frames, settings.chunk_frames, shot_changes=settings.landmarks.num_faces > 1,
            hog=needs_face_hog(settings),
        ):
            table = frame_table(batch, settings)
            owned = table[table["frame"].to_numpy() >= span.start]
            if len(owned):
                yield owned.reset_index(drop=True)


def _span_job(path: str, index: int, span: Span, settings: PipelineSettings) -> int:
    """In a worker: send span ``index``'s frame tables to the parent as they are made, at least
    ``parallel.send_frames`` rows at a time (the parent's later stages cost less per frame on
    bigger chunks), then an end mark."""
    rows = 0
    waiting: list[pd.DataFrame] = []
    for table in span_frames(path, span, settings):
        waiting.append(table)
        if sum(len(t) for t in waiting) >= settings.parallel.send_frames:
            _results.put((index, pd.concat(waiting, ignore_index=True)))
            waiting = []
        rows += len(table)
    if waiting:
        _results.put((index, pd.concat(waiting, ignore_index=True)))
    _results.put((index, None))
    return rows


def _shutdown(executor: ProcessPoolExecutor, futures: dict[int, Future[int]], complete: bool) -> None:
    """Stop the pool; workers still busy (the run was stopped or failed) are terminated, not awaited.

    ``complete``: every span's tables were read. Otherwise a worker whose job is done may still
    hold tables the parent never read: it cannot exit until its queue's pipe drains, so waiting
    for it would hang; it is terminated too."""
    busy = not complete or any(not future.done() for future in futures.values())
    processes = dict(getattr(executor, "_processes", None) or {})  # shutdown() drops this reference
    executor.shutdown(wait=not busy, cancel_futures=True)
    if busy:
        for process in list(processes.values()):
            with contextlib.suppress(Exception):
                process.terminate()
        for process in list(processes.values()):
            with contextlib.suppress(Exception):
                process.join(timeout=5)


def stream_frames_parallel(
    path: str | Path,
    settings: PipelineSettings = PipelineSettings(),
    workers: int | None = None,
    progress: bool = False,
    stop: Callable[[], bool] | None = None,
) -> Iterator[pd.DataFrame]:
    """Yield the raw frame table of ``path`` in chunks, as ``pipeline.stream_frames`` does, with the
    landmark stage spread over ``workers`` processes (None = every core).

    Chunks stream back from the workers as they are made and come out in video order. ``stop()``
    is polled while waiting: when it turns true the stream ends early after the last chunk in
    order (the caller flushes what it has). A video too short to split runs in this process.
    """
    from tqdm import tqdm

    n_workers = resolve_workers(workers)
    info = video.probe(path, settings.video)
    spans = plan_spans(info, n_workers, settings.parallel)
    if len(spans) == 1:
        yield from stream_frames(path, settings, progress)
        return
    context = mp.get_context("spawn")  # no fork of a process that may hold native threads
    results = context.Queue()
    executor = ProcessPoolExecutor(
        max_workers=min(n_workers, len(spans)), mp_context=context, initializer=_init_worker, initargs=(results,)
    )
    futures: dict[int, Future[int]] = {}
    buffered: dict[int, deque[pd.DataFrame]] = {}
    ended: set[int] = set()
    in_flight = settings.parallel.lookahead * n_workers
    current = faces = total = 0
    last_ms = -math.inf
    bar = tqdm(
        total=info.frame_count or None, unit="frame", disable=None if progress else True, file=sys.stderr,
        desc=f"{Path(path).name} ({n_workers} workers)", mininterval=0.5, dynamic_ncols=True, leave=False,
    )  # fmt: skip
    try:
        with bar:
            while current < len(spans):
                for index in range(current, min(current + in_flight, len(spans))):
                    if index not in futures:
                        futures[index] = executor.submit(_span_job, str(path), index, spans[index], settings)
                        buffered[index] = deque()
                if buffered[current]:
                    table = buffered[current].popleft()
                    if float(table["time_ms"].iloc[0]) <= last_ms:
                        _warn_step_back(path, int(table["frame"].iloc[0]))
                    last_ms = float(table["time_ms"].iloc[-1])
                    faces += int(table.loc[table["face_found"].to_numpy(bool), "frame"].nunique())
                    total += int(table["frame"].nunique())
                    yield table
                    continue
                if current in ended:
                    futures.pop(current).result()
                    del buffered[current]
                    current += 1
                    continue
                if stop is not None and stop():
                    return
                try:
                    index, table = results.get(timeout=0.2)
                except queue.Empty:
                    _raise_failure(futures[current])
                    continue
                if table is None:
                    ended.add(index)
                else:
                    buffered[index].append(table)
                    bar.update(int(table["frame"].nunique()))
    finally:
        _shutdown(executor, futures, complete=current >= len(spans))
        results.close()
        results.cancel_join_thread()
    warn_coverage(path, faces, total)


def _raise_failure(future: Future[int]) -> None:
    """A span whose worker failed: its error (an AupipeError as it is), or one line for a dead worker."""
    if not future.done():
        return
    try:
        future.result()
    except BrokenProcessPool:
        raise AupipeError(
            "a worker process died (out of memory, or a script that starts workers without "
            "`if __name__ == '__main__':`); run with --workers 1 (workers=1)"
        ) from None


def _warn_step_back(path: str | Path, frame: int) -> None:
    warnings.warn(
        f"{path}: timestamps step back at frame {frame} where two workers' spans meet (the container's "
        "timestamps do not survive seeking); use --workers 1 for this video",
        AupipeWarning,
        3,
    )


def raw_frames(
    path: str | Path,
    settings: PipelineSettings = PipelineSettings(),
    progress: bool = False,
    workers: int | None = 1,
    stop: Callable[[], bool] | None = None,
) -> Iterator[pd.DataFrame]:
    """The raw frame tables of ``path``: ``frames.stream_frames`` in this process for ``workers=1``,
    else the landmark stage over ``workers`` processes (None = every core; ``stream_frames_parallel``)."""
    if workers == 1:
        return stream_frames(path, settings, progress)
    return stream_frames_parallel(path, settings, workers, progress, stop)
