"""Another tool's per-frame AUs (OpenFace, py-feat CSV) through windows, mapping and spotting:
``import_frames`` (the frame table), ``analyze_frames`` (every table in memory) and ``run_frames``
(streamed into files, atomically, Ctrl-C keeps what is done). The chain is the one of a video
with the frame stages replaced (``aupipe.chain.imported``); docs/import.md.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from aupipe.chain.imported import (
    CHUNK_ROWS, POSE_COLUMNS, ImportSource, frame_rows, imported_chain, open_source, read_chunks, stream_imported, stream_table,
)  # fmt: skip
from aupipe.chain.labels import label_windows
from aupipe.chain.settings import PipelineSettings
from aupipe.chain.faces import insert_face_id
from aupipe.chain.stream import Chunk, StreamState, advance
from aupipe.errors import SettingsError
from aupipe.events import spotting, summary
from aupipe.io.writers import AtomicCsvWriter, AtomicParquetWriter, check_outputs, format_of, open_writer
from aupipe.rules import mapping
from aupipe.running import faces
from aupipe.running.analyze import AnalysisResult
from aupipe.running.run import RunSummary, StopFlag, no_interrupt
from aupipe.signal import video, windows

__all__ = ["ImportSummary", "analyze_frames", "import_frames", "run_frames"]


@dataclass(frozen=True)
class ImportSummary(RunSummary):
    """``RunSummary`` of ``run_frames``, plus what the imported table lacks (``baseline`` is None).

    kind: ``openface`` / ``pyfeat``; missing_columns: columns of a video's frame table the import
    has not; empty_columns: columns it has but leaves NaN; note: the one-line account of both and
    what they change downstream (docs/import.md)."""

    kind: str = "openface"
    missing_columns: tuple[str, ...] = ()
    empty_columns: tuple[str, ...] = ()
    note: str = ""


def _tagged(frames: pd.DataFrame, source: ImportSource) -> pd.DataFrame:
    frames.attrs.update(
        source=str(source.path), kind=source.kind, missing_columns=source.missing_columns(),
        empty_columns=source.empty_columns(), ignored_columns=list(source.ignored), note=source.note(),
    )  # fmt: skip
    return frames


def import_frames(
    path: str | Path, kind: str = "openface", fps: float | None = None, face_id: int | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> pd.DataFrame:  # fmt: skip
    """The frame table of an OpenFace / py-feat CSV (one row per frame; columns ``source.frame_columns()``),
    with ``attrs`` ``missing_columns``, ``empty_columns``, ``ignored_columns``, ``note``, ``kind``, ``source``.

    Only the frame stages run (``ImportedAuStage`` and the column order, through the chain's own
    frame-stage contract); the file is read ``chunk_rows`` rows at a time."""
    source = open_source(path, kind, fps, face_id)
    chain = imported_chain(PipelineSettings(spotting=None), mapping.load_mapping(), kind)
    parts = []
    for raw in read_chunks(source, chunk_rows):  # at least one chunk: a file without rows is an InputError
        rows = raw
        for stage in chain.frame_stages:
            rows, _ = stage.step(stage.start(), rows, False)  # stateless stages: no state to carry
        parts.append(rows)
    return _tagged(pd.concat(parts, ignore_index=True), source)


def _collect(
    items: Iterator[tuple[Chunk, StreamState]], emotion_map: mapping.Mapping, settings: PipelineSettings
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Every chunk's frames, windows (with ``in_event``) and events, concatenated."""
    frame_parts, window_parts, event_parts = (
        [],
        [],
        [insert_face_id(spotting.empty_events(emotion_map), 0, after="event")],
    )
    for chunk, _ in items:
        if len(chunk.frames):
            frame_parts.append(chunk.frames)
        window_parts.append(chunk.windows)
        event_parts.append(chunk.events)
    frames = pd.concat(frame_parts, ignore_index=True) if frame_parts else pd.DataFrame()
    window_table = pd.concat([w for w in window_parts if len(w)] or window_parts[-1:], ignore_index=True)
    events = pd.concat([e for e in event_parts if len(e)] or event_parts[:1], ignore_index=True)
    if settings.spotting is not None:  # the imported table is one face's
        window_table["in_event"] = spotting.flag_windows(window_table, events).to_numpy()
    return frames, window_table, events


def _info(path: str, frames: pd.DataFrame) -> video.VideoInfo:
    """The table's "video": frame rate from its median frame interval, its row count; no image size."""
    times = frames["time_ms"].to_numpy(dtype=np.float64) if "time_ms" in frames else np.array([])
    step = float(np.median(np.diff(times))) if len(times) > 1 else np.nan
    return video.VideoInfo(path, 1000.0 / step if step > 0 else 0.0, len(frames), 0, 0)


def analyze_frames(
    frames_or_path: pd.DataFrame | str | Path, emotion_map: mapping.Mapping | None = None,
    settings: PipelineSettings = PipelineSettings(), kind: str = "openface", fps: float | None = None,
    face_id: int | None = None, chunk_rows: int = CHUNK_ROWS,
) -> AnalysisResult:  # fmt: skip
    """Windows, mapping labels, events and the summary of a frame table: a DataFrame in the frame
    table's layout (``frame``, ``time_ms``, ``face_found``, ``AUxx_r`` ...; e.g. ``import_frames``'
    result) or the path of an OpenFace / py-feat CSV (``kind``). ``AnalysisResult.baseline`` is
    None; ``.video`` has the table's frame rate and row count (width and height 0); ``.frames.attrs``
    says what an imported table lacks."""
    emotion_map = emotion_map or mapping.load_mapping()
    if isinstance(frames_or_path, pd.DataFrame):
        name, source = "<frame table>", None
        items = stream_table(frames_or_path, emotion_map, settings, chunk_rows)
    else:
        source = open_source(frames_or_path, kind, fps, face_id)
        name, items = str(frames_or_path), stream_imported(source, emotion_map, settings, chunk_rows)
    frames, window_table, events = _collect(items, emotion_map, settings)
    if source is not None:
        frames = _tagged(frames, source)
    summary_settings = summary.SummarySettings.for_mapping(emotion_map)
    clip_summary = faces.summary_table(
        faces.summary_faces({}, window_table, events, summary_settings), summary_settings
    )
    return AnalysisResult(frames, window_table, None, _info(name, frames), emotion_map.name, events, clip_summary)


def _empty_windows(source: ImportSource, emotion_map: mapping.Mapping, settings: PipelineSettings) -> pd.DataFrame:
    """The window table's columns for this source, no rows (the header of a run that made no window)."""
    pose = list(POSE_COLUMNS) if source.pose else []
    empty = frame_rows(pd.DataFrame(columns=["frame", "time_ms", "face_found", *pose]))
    table = label_windows(
        windows.compute_windows(empty).assign(baseline_confidence=pd.Series(dtype=float)), emotion_map
    )
    table = table.assign(in_event=pd.Series(dtype=bool)) if settings.spotting is not None else table
    return insert_face_id(table, 0, after="window")


def run_frames(
    path: str | Path, windows_out: str | Path, frames_out: str | Path | None = None,
    emotion_map: mapping.Mapping | None = None, settings: PipelineSettings = PipelineSettings(),
    kind: str = "openface", events_out: str | Path | None = None, summary_out: str | Path | None = None,
    fps: float | None = None, face_id: int | None = None, output_format: str | None = None,
    summary_segment_s: float = 60.0, chunk_rows: int = CHUNK_ROWS,
) -> ImportSummary:  # fmt: skip
    """Stream an OpenFace / py-feat CSV through the chain into window (and frame, event, summary)
    files, CSV or Parquet, each complete or absent (``aupipe.io.writers``); the CSV is read
    ``chunk_rows`` rows at a time. No output may be the input or another output (OutputError,
    exit 4, before any work). The first Ctrl-C stops reading, flushes every stage and commits
    (``interrupted``); a second one, or any error, leaves no file."""
    emotion_map = emotion_map or mapping.load_mapping()
    outputs = {"windows": windows_out, "frames": frames_out, "events": events_out, "summary": summary_out}
    check_outputs([path], outputs)
    for target in outputs.values():
        if target is not None:
            format_of(target, output_format)
    if events_out is not None and settings.spotting is None:
        raise SettingsError("events need spotting: leave PipelineSettings.spotting on to write them")
    source = open_source(path, kind, fps, face_id)  # a bad header fails before any file is made
    chain = imported_chain(settings, emotion_map, kind)
    summary_settings = summary.SummarySettings.for_mapping(emotion_map, summary_segment_s)
    summary_states: dict[int, summary.SummaryState] = {}
    flags: dict[int, spotting.FlagState] = {}
    writers: dict[str, AtomicCsvWriter | AtomicParquetWriter] = {}
    n_frames = n_windows = n_events = n_faces = 0
    state = StreamState()
    with contextlib.ExitStack() as files, StopFlag() as stop:
        for name, target in outputs.items():
            if target is not None:
                writers[name] = files.enter_context(open_writer(target, output_format))
        raws = read_chunks(source, chunk_rows)
        for raw in itertools.chain(raws, [None]):
            final = raw is None or stop.requested
            chunk, state = advance(state, raw, emotion_map, settings, final=final, chain=chain)
            window_rows = chunk.windows
            if settings.spotting is not None:
                window_rows, flags = faces.flag_faces(flags, window_rows, chunk.events, state, final)
            writers["windows"].write(window_rows)
            summary_states = faces.summary_faces(summary_states, window_rows, chunk.events, summary_settings)
            if "frames" in writers:
                writers["frames"].write(chunk.frames)
            if "events" in writers:
                writers["events"].write(chunk.events)
            n_frames += len(chunk.frames)
            n_windows += len(chunk.windows)
            n_events += len(chunk.events)
            n_faces += int(chunk.frames["face_found"].sum()) if len(chunk.frames) else 0
            if final:
                raws.close()
                break
        if "summary" in writers:
            writers["summary"].write(faces.summary_table(summary_states, summary_settings))
        empty = {
            "windows": _empty_windows(source, emotion_map, settings),
            "events": insert_face_id(spotting.empty_events(emotion_map), 0, after="event"),
            "frames": source.frame_columns(), "summary": faces.summary_table({}, summary_settings),
        }  # fmt: skip
        with no_interrupt():
            for name, writer in writers.items():
                writer.commit(empty[name])
    return ImportSummary(
        windows_path=Path(windows_out), frames_path=Path(frames_out) if frames_out else None, n_frames=n_frames,
        n_windows=n_windows, interrupted=stop.requested, baseline=None,
        events_path=Path(events_out) if events_out else None, n_events=n_events, n_face_frames=n_faces,
        summary_path=Path(summary_out) if summary_out else None, kind=kind,
        missing_columns=tuple(source.missing_columns()), empty_columns=tuple(source.empty_columns()), note=source.note(),
    )  # fmt: skip
