"""Many videos: one output set per video, a manifest, resumable, on local processes or a Ray cluster.

``aupipe batch INPUTS... -o OUT_DIR`` finds the videos (folders, globs, list files), runs
``pipeline.run`` on each (one process per video, ``workers`` at a time) and writes, in OUT_DIR:

- ``<key>.windows.csv`` (and ``.frames`` / ``.events`` when asked), or ``.parquet`` with
  ``output_format="parquet"``; ``key`` is the video's path below the inputs' common folder,
  ``/`` written as ``__``;
- ``manifest.csv``: one row per video (status ok / error / pending, frames, face coverage,
  seconds, the error message), rewritten atomically as videos finish;
- ``windows.parquet``: the windows of every finished video in one table (column ``video``);
- ``.aupipe-journal.jsonl``: one line appended per finished video, so a killed batch loses
  only the videos in flight. A re-run skips every video whose content hash (sha256) and
  settings match a journal entry whose outputs still exist.

A bad video is recorded in the manifest (status ``error``) and never stops the batch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import pandas as pd

from aupipe.rules import mapping as mapping_module
from aupipe.signal.video import find_videos
from aupipe.errors import AupipeError, InputError, OutputError, SettingsError
from aupipe.learning.features import file_sha256
from aupipe.io.writers import AtomicCsvWriter
from aupipe.chain.parallel import thread_lock_for_tqdm
from aupipe.running.run import StopFlag
from aupipe.running.dataset import dataset_current, write_dataset
from aupipe.running.batch_job import (  # the job's model, also read as batching.BatchJob etc.
    DATASET, ENGINES, JOURNAL, MANIFEST, MANIFEST_COLUMNS, STOP_MESSAGE, BatchJob, BatchSummary, VideoTask,
    output_keys, output_paths,
)  # fmt: skip

__all__ = [
    "DATASET", "JOURNAL", "MANIFEST", "BatchJob", "BatchSummary", "VideoTask", "output_keys", "output_paths",
    "process_video", "read_journal", "run_batch",
]  # fmt: skip


# --------------------------------------------------------------------------------------------
# Finding the videos
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# One video (runs in a worker process, local or Ray)
# --------------------------------------------------------------------------------------------

_progress_queue: Any = None  # set in local worker processes: frames done, for the parent's bar


def process_video(task: VideoTask, out_dir: str, job: BatchJob) -> dict[str, Any]:
    """Run the pipeline on one video into ``out_dir``; never raises for a bad video: returns its
    manifest row (status ok / error / interrupted)."""
    import warnings

    from aupipe.running.run import run

    paths = output_paths(Path(out_dir), task.key, job)
    started = time.perf_counter()
    row: dict[str, Any] = {"video": task.video, "key": task.key, "sha256": task.sha256, "error": ""}
    report = _progress_queue.put if _progress_queue is not None else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # per-video warnings would interleave; coverage is in the manifest
            summary = run(
                task.video, paths["windows"], paths.get("frames"), job.emotion_map or mapping_module.load_mapping(),
                job.settings, progress=False, model=job.model, rule_weight=job.rule_weight,
                events_out=paths.get("events"), workers=1, output_format=job.output_format, on_frames=report,
            )  # fmt: skip
        row.update(
            status="interrupted" if summary.interrupted else "ok", frames=summary.n_frames,
            face_frames=summary.n_face_frames, windows=summary.n_windows, events=summary.n_events,
        )  # fmt: skip
    except AupipeError as err:
        row.update(status="error", error=str(err))
    except Exception as err:  # noqa: BLE001 - one bad video never stops a batch
        row.update(status="error", error=f"internal error: {type(err).__name__}: {err}".splitlines()[0])
    seconds = time.perf_counter() - started
    frames = row.get("frames") or 0
    row.update(
        seconds=round(seconds, 3), frames_per_s=round(frames / seconds, 2) if seconds > 0 else 0.0,
        face_coverage=round(row["face_frames"] / frames, 4) if frames else 0.0,
        windows_file=paths["windows"].name if row["status"] != "error" else "",
        finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )  # fmt: skip
    return row


def _init_local_worker(progress: Any) -> None:
    """Local worker start-up: Ctrl-C is the parent's to handle; frame counts go to ``progress``."""
    global _progress_queue
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    thread_lock_for_tqdm()
    _progress_queue = progress
    from aupipe.signal.landmarks import import_mediapipe

    import_mediapipe()


# --------------------------------------------------------------------------------------------
# Journal and manifest
# --------------------------------------------------------------------------------------------


def read_journal(out_dir: Path) -> dict[str, dict[str, Any]]:
    """The latest journal entry per video key (a torn last line, from a killed run, is ignored)."""
    entries: dict[str, dict[str, Any]] = {}
    path = out_dir / JOURNAL
    if not path.exists():
        return entries
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            entry = json.loads(line)
            if isinstance(entry, dict) and "key" in entry:
                entries[entry["key"]] = entry
    return entries


def _append_journal(out_dir: Path, row: dict[str, Any]) -> None:
    """One ``write`` of one line in append mode: a kill can tear at most this line."""
    line = (json.dumps(row, default=_json_default) + "\n").encode()
    fd = os.open(out_dir / JOURNAL, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def _json_default(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else str(value)


def _write_manifest(out_dir: Path, rows: Iterable[dict[str, Any]]) -> Path:
    table = pd.DataFrame(list(rows), columns=MANIFEST_COLUMNS)
    writer = AtomicCsvWriter(out_dir / MANIFEST)
    writer.write(table)
    return writer.commit(MANIFEST_COLUMNS)


def _is_done(entry: dict[str, Any] | None, task: VideoTask, settings_hash: str, out_dir: Path, job: BatchJob) -> bool:
    if entry is None or entry.get("sha256") != task.sha256 or entry.get("settings_hash") != settings_hash:
        return False
    if entry.get("status") == "error":
        return True  # the same bytes fail the same way; retry_errors=True tries again
    return entry.get("status") == "ok" and all(p.exists() for p in output_paths(out_dir, task.key, job).values())


def _hash_videos(videos: Sequence[Path], keys: Sequence[str], journal: dict[str, dict[str, Any]]) -> list[VideoTask]:
    """Content hashes, reusing the journal's where a file's size and mtime are unchanged."""
    tasks = []
    for video, key in zip(videos, keys, strict=True):
        entry = journal.get(key) or {}
        try:
            stat = video.stat()
        except OSError as err:
            raise InputError(f"{video}: cannot read ({err.strerror})") from None
        if entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns and entry.get("sha256"):
            digest = str(entry["sha256"])
        else:
            try:
                digest = file_sha256(video)
            except OSError as err:
                raise InputError(f"{video}: cannot read ({err.strerror})") from None
        tasks.append(VideoTask(str(video), key, digest, stat.st_size, stat.st_mtime_ns))
    return tasks


# --------------------------------------------------------------------------------------------
# The batch
# --------------------------------------------------------------------------------------------


def run_batch(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    job: BatchJob = BatchJob(),
    workers: int | None = None,
    engine: str = "local",
    address: str | None = None,
    progress: bool = True,
    retry_errors: bool = False,
    dataset: bool = True,
) -> BatchSummary:
    """Process every video of ``inputs`` into ``out_dir`` (see the module docstring).

    workers: videos at once (None = every core; for Ray, the CPUs asked of a local instance).
    engine: "local" (processes on this machine) or "ray" (``address`` of a cluster, or a local
    instance when None). A first Ctrl-C finishes the videos in flight and stops; a second
    stops at once. Everything finished is in the journal and the manifest either way.
    """
    if engine not in ENGINES:
        raise SettingsError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine == "ray":
        _import_ray()  # before any output exists
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: is a file; give a folder for the batch outputs")
    videos = find_videos(inputs)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"{out}: cannot create the output folder ({err.strerror})") from None
    with _folder_lock(out):
        return _run_locked(out, videos, job, workers, engine, address, progress, retry_errors, dataset)


@contextlib.contextmanager
def _folder_lock(out: Path) -> Iterator[None]:
    """One batch per output folder at a time (an advisory lock where the OS has ``fcntl``)."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock
        yield
        return
    with open(out / ".aupipe-batch.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise OutputError(f"{out}: another aupipe batch is writing to this folder") from None
        yield


def _run_locked(
    out: Path, videos: list[Path], job: BatchJob, workers: int | None, engine: str, address: str | None,
    progress: bool, retry_errors: bool, dataset: bool,
) -> BatchSummary:  # fmt: skip
    from aupipe.chain.parallel import resolve_workers

    for stale in out.glob(".*.part"):  # temporary files of a killed run
        stale.unlink(missing_ok=True)
    if job.emotion_map is None:
        job = dataclasses.replace(job, emotion_map=mapping_module.load_mapping())
    if job.model is not None:
        from aupipe.running.run import load_predictor

        load_predictor(job.model, job.emotion_map, job.settings)  # a misfit model fails once, up front
    settings_hash = job.settings_hash()
    journal = read_journal(out)
    tasks = _hash_videos(videos, output_keys(videos), journal)
    rows: dict[str, dict[str, Any]] = {}
    todo: list[VideoTask] = []
    for task in tasks:
        entry = journal.get(task.key)
        if _is_done(entry, task, settings_hash, out, job) and not (
            retry_errors and entry and entry["status"] == "error"
        ):
            rows[task.key] = entry  # type: ignore[assignment]
        else:
            todo.append(task)
    n_skipped = len(tasks) - len(todo)
    by_key = {t.key: t for t in tasks}

    manifest_written = [0.0]
    n_processed = [0]

    def manifest_rows() -> Iterator[dict[str, Any]]:
        for task in tasks:
            yield rows.get(task.key) or {
                "video": task.video,
                "key": task.key,
                "status": "pending",
                "sha256": task.sha256,
            }

    def finished(row: dict[str, Any]) -> None:
        task = by_key[row["key"]]
        row = {**row, "settings_hash": settings_hash, "size": task.size, "mtime_ns": task.mtime_ns}
        rows[row["key"]] = row
        n_processed[0] += 1
        if row["status"] != "interrupted":
            _append_journal(out, row)  # the durable record; the manifest follows at most every 2 s
        if time.monotonic() - manifest_written[0] > 2.0:
            _write_manifest(out, manifest_rows())
            manifest_written[0] = time.monotonic()

    n_workers = resolve_workers(workers)
    runner = _run_local if engine == "local" else _run_ray
    interrupted = runner(todo, out, job, n_workers, address, progress, finished)
    manifest_path = _write_manifest(out, manifest_rows())
    dataset_path = None
    if dataset:
        ok_keys = [t.key for t in tasks if rows.get(t.key, {}).get("status") == "ok"]
        dataset_path = out / DATASET
        with_windows = [k for k in ok_keys if int(rows[k].get("windows") or 0) > 0]
        if n_processed[0] or not dataset_current(out, with_windows):
            write_dataset(out, ok_keys, job)
    manifest = pd.read_csv(manifest_path, keep_default_na=False, na_values=[""])
    return BatchSummary(manifest, out, manifest_path, dataset_path, n_processed[0], n_skipped, interrupted)


def _bars(todo: Sequence[VideoTask], progress: bool) -> tuple[Any, Any]:
    from tqdm import tqdm

    disable = None if progress else True
    videos = tqdm(
        total=len(todo), unit="video", desc="videos", disable=disable, file=sys.stderr, position=0, dynamic_ncols=True
    )
    frames = tqdm(
        unit="frame", desc="frames", disable=disable, file=sys.stderr, position=1, dynamic_ncols=True, leave=False
    )
    return videos, frames


def _run_local(
    todo: Sequence[VideoTask], out: Path, job: BatchJob, n_workers: int, address: str | None, progress: bool,
    finished: Callable[[dict[str, Any]], None],
) -> bool:  # fmt: skip
    """Videos over a pool of spawned processes. A process that dies (a decoder crash, out of memory)
    breaks the pool: the videos it may have held are retried one at a time, so only the culprit is
    recorded as an error."""
    import multiprocessing as mp

    context = mp.get_context("spawn")
    frames_done = context.SimpleQueue()  # frame counts from the workers, for the frames bar
    pending: list[VideoTask] = list(reversed(todo))
    suspects: set[str] = set()
    video_bar, frame_bar = _bars(todo, progress)
    with video_bar, frame_bar, StopFlag(STOP_MESSAGE) as stop:
        while pending and not stop.requested:
            executor = ProcessPoolExecutor(
                max_workers=min(n_workers, len(pending)), mp_context=context,
                initializer=_init_local_worker, initargs=(frames_done,),
            )  # fmt: skip
            running: dict[Future[dict[str, Any]], VideoTask] = {}
            healthy = True
            try:
                while (pending or running) and healthy:
                    while pending and len(running) < n_workers and not stop.requested:  # none queued: Ctrl-C stops soon
                        alone = pending[-1].key in suspects or any(t.key in suspects for t in running.values())
                        if alone and running:
                            break  # a suspect runs on its own, so a second crash names it
                        task = pending.pop()
                        running[executor.submit(process_video, task, str(out), job)] = task
                    if not running:
                        break
                    done, _ = wait(running, timeout=0.2, return_when=FIRST_COMPLETED)
                    _drain(frames_done, frame_bar)
                    for future in done:
                        try:
                            row = future.result()
                        except BrokenProcessPool:
                            healthy = False
                            break
                        finished(row)
                        running.pop(future)
                        video_bar.update(1)
                    if not healthy:
                        held = list(running.values())
                        if len(held) == 1:
                            finished(_crash_row(held[0]))
                            video_bar.update(1)
                        else:
                            suspects.update(t.key for t in held)
                            pending.extend(held)
                        running.clear()
            except KeyboardInterrupt:
                _terminate(executor)
                executor.shutdown(wait=True, cancel_futures=True)
                _remove_partial(out, running.values())
                return True
            finally:
                _drain(frames_done, frame_bar)
            executor.shutdown(wait=healthy, cancel_futures=True)
    frames_done.close()
    return stop.requested


def _remove_partial(out: Path, tasks: Iterable[VideoTask]) -> None:
    """Temporary files of videos whose process was stopped mid-way."""
    for task in tasks:
        for part in out.glob(f".{glob.escape(task.key)}.*.part"):
            part.unlink(missing_ok=True)


def _drain(frames_done: Any, bar: Any) -> None:
    with contextlib.suppress(OSError, ValueError, EOFError):
        while not frames_done.empty():
            bar.update(frames_done.get())


def _crash_row(task: VideoTask) -> dict[str, Any]:
    return {
        "video": task.video, "key": task.key, "sha256": task.sha256, "status": "error", "frames": 0,
        "face_frames": 0, "face_coverage": 0.0, "windows": 0, "events": 0, "seconds": 0.0, "frames_per_s": 0.0,
        "windows_file": "", "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "error": "the worker process died on this video (a crash in the decoder, or out of memory)",
    }  # fmt: skip


def _terminate(executor: ProcessPoolExecutor) -> None:
    """Stop the pool's processes now (a second Ctrl-C) and let the pool notice before it shuts down."""
    processes = dict(getattr(executor, "_processes", None) or {})
    for process in processes.values():
        with contextlib.suppress(Exception):
            process.terminate()
    for process in processes.values():
        with contextlib.suppress(Exception):
            process.join(timeout=5)


def _import_ray() -> Any:
    """The ``ray`` module, or one line saying how to get it (a bare ``ray`` folder, such as Ray's
    own /tmp/ray seen from the current folder, is not Ray)."""
    try:
        import ray
    except ImportError:
        ray = None
    if ray is None or not hasattr(ray, "init"):
        raise AupipeError("--engine ray needs Ray: pip install 'aupipe[ray]'")
    return ray


def _run_ray(
    todo: Sequence[VideoTask], out: Path, job: BatchJob, n_workers: int, address: str | None, progress: bool,
    finished: Callable[[dict[str, Any]], None],
) -> bool:  # fmt: skip
    """The same videos as Ray tasks: on the cluster at ``address``, or a local instance of ``n_workers`` CPUs.

    Every Ray node must see the input videos and ``out`` at the same paths (a shared file system).
    """
    ray = _import_ray()
    import logging

    ray_logger = logging.getLogger("ray")
    ray_level = ray_logger.level
    ray_logger.setLevel(logging.ERROR)  # Ray's start-up notes; aupipe's bars and errors still show
    started_here = not ray.is_initialized()
    if started_here:
        from aupipe.signal.native import quiet_native_stderr

        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        with quiet_native_stderr():  # Ray's start-up lines; aupipe's own messages still show
            if address:
                ray.init(address=address, **options)
            else:
                ray.init(num_cpus=n_workers, **options)
    remote = ray.remote(num_cpus=1, max_retries=1)(process_video)
    video_bar, frame_bar = _bars(todo, progress)
    pending = list(reversed(todo))
    running: dict[Any, VideoTask] = {}
    limit = 2 * max(1, int(ray.cluster_resources().get("CPU", n_workers)))
    try:
        with video_bar, frame_bar, StopFlag(STOP_MESSAGE) as stop:
            while pending or running:
                while pending and len(running) < limit and not stop.requested:
                    task = pending.pop()
                    running[remote.remote(task, str(out), job)] = task
                if not running:
                    break
                done, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
                for ref in done:
                    task = running.pop(ref)
                    try:
                        row = ray.get(ref)
                    except Exception as err:  # noqa: BLE001 - a lost worker or node costs one video
                        row = {**_crash_row(task), "error": f"Ray task failed: {type(err).__name__}"}
                    finished(row)
                    video_bar.update(1)
                    frame_bar.update(int(row.get("frames") or 0))
            return stop.requested
    except KeyboardInterrupt:
        for ref in running:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        return True
    finally:
        if started_here:
            ray.shutdown()
        ray_logger.setLevel(ray_level)


# --------------------------------------------------------------------------------------------
# The dataset-level table
# --------------------------------------------------------------------------------------------
