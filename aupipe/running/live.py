"""``live``: the chain on a camera, a stream or a file played in real time, as it happens.

The same chain as for files (``aupipe.chain.stream.advance``, ``--faces N`` included) is fed the
frames waiting at each moment (usually one). What comes out is a stream of records (dicts with a
``type``; docs/live.md, schema ``aupipe/schemas/live.schema.json``):

- ``frame``: one face of one frame, as soon as its AUs are final (after the AU stage's two-frame
  filter; ``Chain.step_early``), with ``latency_ms`` from capture;
- ``window``: a window as soon as it closes (``in_event`` false), and ``window_update`` when an
  event that overlaps it comes out later (``in_event`` true): windows are never held back;
- ``event``: an expression event as soon as the spotter has confirmed it (``delay_ms``: how far
  past its offset the video had got, in video time; bounded by the spotter's context,
  docs/live.md);
- ``label``: a face's window label changed; ``status`` every ``status_every_s``; ``start`` and
  ``end`` (why it ended, frames read, dropped, processed).

Tables (``out_dir``) are written as ``aupipe run`` writes them (windows with ``in_event``, events,
and with ``frames`` the frame table), rotated every ``rotate_min`` minutes; each file is whole
once rotated or when the run stops (``RotatingTables``).
"""

from __future__ import annotations

import bisect
import dataclasses
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aupipe.chain.faces import insert_face_id
from aupipe.chain.frames import frame_table, frame_table_empty, needs_face_hog
from aupipe.chain.settings import PipelineSettings
from aupipe.chain.stages import build_chain
from aupipe.chain.stream import StreamState, advance, window_table_empty
from aupipe.errors import SettingsError
from aupipe.events import spotting
from aupipe.io.writers import AtomicCsvWriter, AtomicParquetWriter, open_writer
from aupipe.rules import mapping
from aupipe.running import faces
from aupipe.signal import aus, landmarks
from aupipe.signal.live_source import Captured, LiveSource, SourceSettings
from aupipe.signal.native import quiet_native_stderr
from aupipe.version import __version__

__all__ = ["LiveSettings", "RotatingTables", "live", "live_pipeline_settings"]

#: The frame-row columns a ``frame`` record carries (besides its ids and times).
FRAME_FIELDS: tuple[str, ...] = (
    "face_found", "box_x_px", "box_y_px", "box_w_px", "box_h_px", "pitch_deg", "yaw_deg", "roll_deg",
    *aus.au_columns()[: len(aus.AU_NAMES)],
)  # fmt: skip
WINDOW_FIELDS: tuple[str, ...] = (
    "start_ms", "end_ms", "face_coverage", "emotion", "core_emotion", "emotion_score", "emotion_confidence",
    "emotion_aus",
)  # fmt: skip
EVENT_FIELDS: tuple[str, ...] = ("onset_ms", "apex_ms", "offset_ms", "kind", "aus", "confidence", "emotion")


@dataclass(frozen=True)
class LiveSettings:
    """frames: send ``frame`` records; later_stages_every_ms: the AU stage runs on every batch of
    frames, the later ones (speech, windows, spotting) once this much video has come (ms; their
    cost is mostly per call, so this keeps up with 30 fps on 2 cores; windows wait at most this
    long more); status_every_s: a ``status`` record this often (s);
    rotate_min: start new table files this often (minutes; None: one set of files);
    table_format: "csv" or "parquet"; frame_table: also write the frame table."""

    frames: bool = True
    later_stages_every_ms: float = 500.0
    status_every_s: float = 5.0
    rotate_min: float | None = None
    table_format: str = "csv"
    frame_table: bool = False

    def __post_init__(self) -> None:
        if self.rotate_min is not None and not self.rotate_min > 0:
            raise SettingsError(f"rotate_min must be > 0 minutes, got {self.rotate_min}")
        if self.table_format not in ("csv", "parquet"):
            raise SettingsError(f"unknown table format {self.table_format!r}; choose csv or parquet")


class RotatingTables:
    """Window, event (and frame) tables in ``out_dir``, a new set of files every ``rotate_min``
    minutes: ``live.0001.windows.csv``, ``live.0001.events.csv``, ... Each file is written to a
    temporary name and renamed when its part ends (``aupipe.io.writers``)."""

    def __init__(self, out_dir: str | Path, settings: LiveSettings, empty: dict[str, pd.DataFrame]) -> None:
        self.out_dir = Path(out_dir)
        if not self.out_dir.is_dir():
            raise SettingsError(f"{self.out_dir}: not a folder (make it first)")
        self.settings = settings
        self.empty = empty
        self.part = 0
        self.started_s = time.monotonic()
        self.written: list[Path] = []
        self.writers: dict[str, AtomicCsvWriter | AtomicParquetWriter] = {}
        self._open()

    def _open(self) -> None:
        self.part += 1
        self.started_s = time.monotonic()
        kinds = ["windows", "events", *(["frames"] if self.settings.frame_table else [])]
        suffix = "parquet" if self.settings.table_format == "parquet" else "csv"
        for kind in kinds:
            path = self.out_dir / f"live.{self.part:04d}.{kind}.{suffix}"
            writer = open_writer(path, self.settings.table_format)
            writer.__enter__()
            self.writers[kind] = writer

    def write(self, kind: str, table: pd.DataFrame) -> None:
        if kind in self.writers and len(table):
            self.writers[kind].write(table)

    def commit(self) -> None:
        """Finish the current files (each appears whole)."""
        for kind, writer in self.writers.items():
            self.written.append(writer.commit(self.empty[kind]))
            writer.__exit__(None, None, None)
        self.writers = {}

    def maybe_rotate(self) -> None:
        if self.settings.rotate_min is not None and time.monotonic() - self.started_s >= 60 * self.settings.rotate_min:
            self.commit()
            self._open()

    def abort(self) -> None:
        for writer in self.writers.values():
            writer.__exit__(None, None, None)
        self.writers = {}


def _value(value: Any) -> Any:
    """A JSON-ready value: NaN -> None, numpy scalars -> Python ones."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _records(table: pd.DataFrame, kind: str, ids: tuple[str, ...], fields: tuple[str, ...]) -> list[dict[str, Any]]:
    have = [c for c in (*ids, *fields) if c in table.columns]
    return [{"type": kind, **{c: _value(v) for c, v in zip(have, row, strict=True)}}
            for row in table[have].itertuples(index=False, name=None)]  # fmt: skip


class _Clock:
    """Capture times of recent frames: video time -> the monotonic moment it was captured."""

    def __init__(self, keep_s: float = 120.0) -> None:
        self.times_ms: deque[float] = deque()
        self.captured_s: deque[float] = deque()
        self.frames: deque[int] = deque()
        self.by_frame: dict[int, float] = {}
        self.keep_ms = keep_s * 1000.0

    def add(self, batch: list[Captured]) -> None:
        for item in batch:
            self.times_ms.append(item.frame.time_ms)
            self.captured_s.append(item.captured_s)
            self.frames.append(item.frame.index)
            self.by_frame[item.frame.index] = item.captured_s
        while self.times_ms and self.times_ms[-1] - self.times_ms[0] > self.keep_ms:  # oldest first
            self.times_ms.popleft()
            self.captured_s.popleft()
            self.by_frame.pop(self.frames.popleft(), None)

    def at(self, time_ms: float) -> float | None:
        """When the first frame at or after ``time_ms`` was captured (None: not seen yet / gone)."""
        position = bisect.bisect_left(self.times_ms, time_ms)
        return self.captured_s[position] if position < len(self.times_ms) else None

    @property
    def latest_ms(self) -> float:
        return self.times_ms[-1] if self.times_ms else np.nan


def live_pipeline_settings(calibration_s: float = 5.0) -> PipelineSettings:
    """The chain's settings for live use: no landmark columns, and the neutral baseline from the
    first ``calibration_s`` seconds (5; files use 30): nothing comes out before it is known."""
    base = PipelineSettings(include_landmarks=False)
    return dataclasses.replace(base, aus=dataclasses.replace(base.aus, calibration_s=calibration_s))


def live(
    source: str | int | Path,
    emotion_map: mapping.Mapping | None = None,
    settings: PipelineSettings | None = None,
    source_settings: SourceSettings = SourceSettings(),
    live_settings: LiveSettings = LiveSettings(),
    out_dir: str | Path | None = None,
    stop: Callable[[], bool] | None = None,
    preview: Callable[[np.ndarray, list[dict[str, Any]]], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """Run the chain on a live ``source`` (camera index, stream URL or file; ``LiveSource``) and
    yield records as they happen (module doc). ``stop()`` (checked between frames) ends it early;
    so does closing the generator. ``out_dir`` also writes the tables there (``RotatingTables``).
    ``preview(rgb, records)``, when given, sees each batch's last frame and the records it made."""
    emotion_map = emotion_map or mapping.load_mapping()
    settings = settings or live_pipeline_settings()
    chain = build_chain(settings, emotion_map)
    several = settings.several_faces
    empty = {
        "windows": window_table_empty(emotion_map, settings),
        "events": insert_face_id(spotting.empty_events(emotion_map), 0, after="event"),
        "frames": insert_face_id(frame_table_empty(settings), 0, after="frame"),
    }
    tables = RotatingTables(out_dir, live_settings, empty) if out_dir is not None else None
    clock = _Clock()
    state = StreamState()
    flags: dict[int, spotting.FlagState] = {}
    recent_windows: dict[int, deque[tuple[int, float, float]]] = {}
    last_label: dict[int, str] = {}
    counts = {"frames": 0, "windows": 0, "events": 0}
    started = time.monotonic()
    next_status = started + live_settings.status_every_s
    committed = False
    last_full_ms = -np.inf
    reader = LiveSource(source, source_settings)  # started once the model is loaded: no frame lost to that
    yield {"type": "start", "source": str(source), "kind": reader.kind, "faces": settings.landmarks.num_faces,
           "mapping": emotion_map.name, "version": __version__, "wall_time_s": time.time()}  # fmt: skip
    try:
        with quiet_native_stderr(), landmarks.open_landmarker(settings.landmarks) as landmarker, reader:
            timestamp, histogram = -1, None
            hog = needs_face_hog(settings)
            batches = reader.batches()
            while True:
                batch = next(batches, None)
                final = batch is None or (stop is not None and stop())
                raw = None
                if batch is not None:
                    clock.add(batch)
                    found = landmarks.detect(landmarker, [c.frame for c in batch], timestamp, histogram, several, hog)
                    timestamp = max(int(round(batch[-1].frame.time_ms)), timestamp + len(batch))
                    histogram = landmarks.frame_histogram(batch[-1].frame.rgb) if several else None
                    raw = frame_table(found, settings)
                newest_ms = clock.latest_ms
                hold = not final and newest_ms - last_full_ms < live_settings.later_stages_every_ms
                chunk, state = advance(state, raw, emotion_map, settings, final=final, chain=chain, hold=hold)
                if not hold:
                    last_full_ms = newest_ms
                now = time.monotonic()
                shown: list[dict[str, Any]] = []
                if live_settings.frames and chunk.early_frames is not None and len(chunk.early_frames):
                    early = chunk.early_frames
                    for record in _records(early, "frame", ("frame", "face_id", "time_ms"), FRAME_FIELDS):
                        captured = clock.by_frame.get(int(record["frame"]))
                        record["latency_ms"] = None if captured is None else round((now - captured) * 1000, 1)
                        shown.append(record)
                        yield record
                for record in _records(chunk.windows, "window", ("window", "face_id"), WINDOW_FIELDS):
                    closed = clock.at(float(record["end_ms"]))
                    record["latency_ms"] = None if closed is None else round(max(now - closed, 0) * 1000, 1)
                    record["in_event"] = False
                    face = int(record["face_id"])
                    recent_windows.setdefault(face, deque(maxlen=2000)).append(
                        (int(record["window"]), float(record["start_ms"]), float(record["end_ms"]))
                    )
                    shown.append(record)
                    yield record
                    if last_label.get(face) != record["emotion"]:
                        yield {"type": "label", "face_id": face, "time_ms": record["start_ms"],
                               "emotion": record["emotion"], "core_emotion": record["core_emotion"],
                               "previous_emotion": last_label.get(face)}  # fmt: skip
                        last_label[face] = str(record["emotion"])
                for record in _records(chunk.events, "event", ("event", "face_id"), EVENT_FIELDS):
                    record["delay_ms"] = round(clock.latest_ms - float(record["offset_ms"]), 1)
                    at_offset = clock.at(float(record["offset_ms"]))
                    record["latency_ms"] = None if at_offset is None else round(max(now - at_offset, 0) * 1000, 1)
                    yield record
                    face = int(record["face_id"])
                    for window, start_ms, end_ms in recent_windows.get(face, ()):
                        if start_ms < float(record["offset_ms"]) and end_ms > float(record["onset_ms"]):
                            yield {"type": "window_update", "face_id": face, "window": window, "in_event": True}
                counts["frames"] += int((chunk.frames["face_id"].to_numpy() == 0).sum())  # face 0: every frame
                counts["windows"] += len(chunk.windows)
                counts["events"] += len(chunk.events)
                if tables is not None:
                    window_rows = chunk.windows
                    if settings.spotting is not None:
                        window_rows, flags = faces.flag_faces(flags, window_rows, chunk.events, state, final)
                    tables.write("windows", window_rows)
                    tables.write("events", chunk.events)
                    tables.write("frames", chunk.frames)
                    tables.maybe_rotate()
                if preview is not None and batch is not None:
                    preview(batch[-1].frame.rgb, shown)
                if now >= next_status:
                    next_status = now + live_settings.status_every_s
                    yield {"type": "status", "time_ms": _value(clock.latest_ms), "read": reader.n_read,
                           "dropped": reader.n_dropped, "processed": counts["frames"],
                           "fps": round(counts["frames"] / max(now - started, 1e-9), 2)}  # fmt: skip
                if final:
                    break
        if tables is not None:
            tables.commit()
            committed = True
    except (KeyboardInterrupt, GeneratorExit):
        if tables is not None and not committed:
            tables.commit()  # what was computed is kept, each file whole
            committed = True
        raise
    finally:
        if tables is not None and not committed:
            tables.abort()  # an error: no half-made files
    reason = reader.end_reason or "stopped"
    yield {"type": "end", "reason": reason, "read": reader.n_read, "dropped": reader.n_dropped,
           "frames": counts["frames"], "windows": counts["windows"], "events": counts["events"],
           "tables": [str(p) for p in tables.written] if tables is not None else []}  # fmt: skip
