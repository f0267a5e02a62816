"""The pipeline: frames -> landmarks -> normalised mesh -> AUs -> windows -> emotions.

Streams in chunks of frames so that memory stays flat; each stage is a function of the
stage before it. ``stream`` yields per-chunk tables, ``analyze`` collects them into
DataFrames, ``run`` writes them to CSV files atomically.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import appearance, aus, landmarks, mapping, normalize, scoring, speech, spotting, summary, video, windows
from ._native import quiet_native_stderr
from .errors import AupipeWarning, SettingsError
from .output import AtomicCsvWriter, AtomicParquetWriter, check_outputs, format_of, open_writer


@dataclass(frozen=True)
class ParallelSettings:
    """How a video is cut for ``workers`` > 1 processes (``aupipe.parallel``); no effect on one.

    max_span_s: longest span a worker takes at once (s); more spans balance the load better but
        repeat more warm-up frames. min_span_s: shorter videos are not split below this (s).
    overlap_s: warm-up before each span's first frame (s), processed and dropped.
    lookahead: spans queued per worker (bounds memory: each finished span waits as a table).
    send_frames: a worker sends its frame rows in chunks of at least this many frames.
    """

    max_span_s: float = 120.0
    min_span_s: float = 10.0
    overlap_s: float = 1.0
    lookahead: int = 2
    send_frames: int = 256


@dataclass(frozen=True)
class PipelineSettings:
    """Settings of every stage; ``chunk_frames`` frames are processed together (vectorised)."""

    video: video.VideoSettings = field(default_factory=video.VideoSettings)
    landmarks: landmarks.LandmarkSettings = field(default_factory=landmarks.LandmarkSettings)
    normalize: normalize.NormalizeSettings = field(default_factory=normalize.NormalizeSettings)
    aus: aus.AuSettings = field(default_factory=aus.AuSettings)
    windows: windows.WindowSettings = field(default_factory=windows.WindowSettings)
    spotting: spotting.SpottingSettings | None = field(default_factory=spotting.SpottingSettings)  # None: off
    chunk_frames: int = 64
    include_landmarks: bool = True
    au_backend: str = "mediapipe"
    parallel: ParallelSettings = field(default_factory=ParallelSettings)


@dataclass(frozen=True)
class Chunk:
    """One step of the stream: its frame rows and the windows completed by it."""

    frames: pd.DataFrame
    windows: pd.DataFrame
    events: pd.DataFrame = field(default_factory=spotting.empty_events)  # expression events finished by it


def frame_table(batch: landmarks.LandmarkBatch, settings: PipelineSettings = PipelineSettings()) -> pd.DataFrame:
    """The raw per-frame table of one batch: ids, face box, pose, geometric measures, blendshapes
    and (optionally) landmarks. The AU stage adds the AU columns (docs/outputs.md)."""
    pose = normalize.head_pose_deg(batch.transform)
    mesh = normalize.normalize_mesh(batch.landmarks_px, settings.normalize)
    measures = aus.geometric_measures(mesh)
    data: dict[str, np.ndarray] = {
        "frame": batch.frame,
        "time_ms": batch.time_ms,
        "face_found": batch.face_found,
        "box_x_px": batch.face_box_px[:, 0],
        "box_y_px": batch.face_box_px[:, 1],
        "box_w_px": batch.face_box_px[:, 2],
        "box_h_px": batch.face_box_px[:, 3],
        "face_width_px": normalize.face_width(batch.landmarks_px),
        "pitch_deg": pose[:, 0],
        "yaw_deg": pose[:, 1],
        "roll_deg": pose[:, 2],
    }
    for name in aus.MEASURES:
        data[f"g_{name}"] = measures[name].to_numpy()
    for j, name in enumerate(landmarks.BLENDSHAPE_NAMES):
        data[f"bs_{name}"] = batch.blendshapes[:, j]
    texture = batch.appearance if batch.appearance is not None else np.full((len(batch), len(appearance.NAMES)), np.nan)
    for j, name in enumerate(appearance.NAMES):
        data[f"a_{name}"] = texture[:, j]
    if settings.include_landmarks:
        for axis, letter in enumerate("xyz"):
            for i in range(landmarks.N_LANDMARKS):
                data[f"{letter}_{i}"] = batch.landmarks_px[:, i, axis]
    return pd.DataFrame(data)


def order_columns(frames: pd.DataFrame) -> pd.DataFrame:
    """Frame table in documented order: ids and pose, AUs (``_r``, sided, ``_c``), the rest."""
    au_first = [c for c in (*aus.au_columns(), *aus.presence_columns()) if c in frames.columns]
    head = [c for c in frames.columns if not (c.startswith(("g_", "bs_", "a_")) or c[:2] in ("x_", "y_", "z_"))]
    head = [c for c in head if c not in au_first]
    tail = [c for c in frames.columns if c not in head and c not in au_first]
    return frames[head + au_first + tail]


def mapping_input(window_table: pd.DataFrame) -> pd.DataFrame:
    """What the mapping scores: each AU's window peak, named ``AU12``, ``AU12_left``..., and the
    window's evidence columns (``speaking``, ``face_coverage``, ``head_turn_deg``,
    ``baseline_confidence``) where the table has them."""
    peaks = [c for c in window_table.columns if c.startswith("AU") and c.endswith("_peak")]
    evidence = [c for c in scoring.EVIDENCE_COLUMNS if c in window_table.columns]
    return window_table[peaks + evidence].rename(columns=lambda c: c.removesuffix("_peak"))


def label_windows(window_table: pd.DataFrame, emotion_map: mapping.Mapping) -> pd.DataFrame:
    """Window table plus the mapping's scores, winner, core emotion and explanation."""
    if window_table.empty:
        scores = mapping.score(pd.DataFrame(columns=list(aus.AU_NAMES), dtype=float), emotion_map)
        return pd.concat([window_table, scores], axis=1)
    scores = mapping.score(mapping_input(window_table), emotion_map)
    return pd.concat([window_table.reset_index(drop=True), scores.reset_index(drop=True)], axis=1)


def _batched(iterable: Iterator[video.Frame], size: int) -> Iterator[list[video.Frame]]:
    while batch := list(itertools.islice(iterable, size)):
        yield batch


def stream_frames(
    path: str | Path, settings: PipelineSettings = PipelineSettings(), progress: bool = False
) -> Iterator[pd.DataFrame]:
    """Yield the raw frame table of ``path`` chunk by chunk (``settings.chunk_frames`` rows each).

    Frames -> landmarks -> normalised mesh -> geometric measures; the landmarker is closed when
    the generator ends or is closed. Native log lines are kept off stderr throughout.
    """
    from tqdm import tqdm

    info = video.probe(path, settings.video)
    faces = total = 0
    with quiet_native_stderr(), landmarks.open_landmarker(settings.landmarks) as landmarker:
        bar = tqdm(
            total=info.frame_count or None, unit="frame", disable=None if progress else True, file=sys.stderr,
            desc=Path(path).name, mininterval=0.5, dynamic_ncols=True, leave=False,
        )  # fmt: skip
        with bar:
            timestamp = -1
            for frames in _batched(iter(video.iter_frames(path, settings.video)), settings.chunk_frames):
                batch = landmarks.detect(landmarker, frames, timestamp)
                timestamp = max(int(round(batch.time_ms[-1])), timestamp + len(batch))
                faces += int(batch.face_found.sum())
                total += len(batch)
                bar.update(len(batch))
                yield frame_table(batch, settings)
    _warn_coverage(path, faces, total)


@dataclass(frozen=True)
class StreamState:
    """The stages' carried state between chunks: AU stage (baseline, filter) and windows."""

    au: aus.AuState = field(default_factory=aus.AuState)
    windows: windows.WindowState = field(default_factory=windows.WindowState)
    external_aus: pd.DataFrame | None = None  # per-frame AUs of an external backend (py-feat)
    spotting: spotting.SpottingState = field(default_factory=spotting.SpottingState)  # a bounded tail of frames
    speech: speech.SpeechState = field(default_factory=speech.SpeechState)  # ~1 s of look-ahead for ``speaking``


def initial_state(path: str | Path, settings: PipelineSettings = PipelineSettings()) -> StreamState:
    """The state a stream starts from; with ``au_backend="pyfeat"`` py-feat's AUs are computed first."""
    if settings.au_backend == "pyfeat":
        from .pyfeat_backend import detect_aus

        return StreamState(external_aus=detect_aus(path))
    if settings.au_backend != "mediapipe":
        raise SettingsError(f"unknown AU backend {settings.au_backend!r}; use mediapipe or pyfeat")
    return StreamState()


def advance(
    state: StreamState,
    raw: pd.DataFrame | None,
    emotion_map: mapping.Mapping,
    settings: PipelineSettings = PipelineSettings(),
    final: bool = False,
    baseline: aus.Baseline | None = None,
) -> tuple[Chunk, StreamState]:
    """Push raw frame rows through AUs -> windows -> emotions; ``final`` flushes every stage.

    Returns the finished frame rows and labelled windows, and the new state. Pure: the state
    passed in is not changed, so an interrupted caller can always flush from the last state.
    """
    rows, au_state = aus.step(state.au, raw, settings.aus, final=final, baseline=baseline)
    rows, speech_state = speech.step(state.speech, rows if len(rows) else None, final=final)
    rows = order_columns(rows) if len(rows) else _frame_table_empty_cached(settings).iloc[0:0]
    if settings.au_backend == "pyfeat" and len(rows):
        rows = _pyfeat_aus(rows, state)
    done, window_state = windows.step(state.windows, rows if len(rows) else None, settings.windows, final=final)
    confidence = au_state.baseline.confidence if au_state.baseline is not None else np.nan
    done = done.assign(baseline_confidence=np.full(len(done), confidence))
    events, spot_state = spotting.empty_events(emotion_map), state.spotting
    if settings.spotting is not None:
        events, spot_state = spotting.step(
            state.spotting, rows if len(rows) else None, settings.spotting, final=final, emotion_map=emotion_map
        )
    new_state = StreamState(au_state, window_state, state.external_aus, spot_state, speech_state)
    return Chunk(rows, label_windows(done, emotion_map), events), new_state


def _pyfeat_aus(rows: pd.DataFrame, state: StreamState) -> pd.DataFrame:
    """Replace the AU columns of ``rows`` by py-feat's (matched on ``frame``)."""
    if state.external_aus is None:
        return rows
    external = state.external_aus.set_index("frame").reindex(rows["frame"].to_numpy())
    for column in external.columns:
        if column in rows:
            rows[column] = external[column].to_numpy()
    return rows


def raw_frames(
    path: str | Path,
    settings: PipelineSettings = PipelineSettings(),
    progress: bool = False,
    workers: int | None = 1,
    stop: Callable[[], bool] | None = None,
) -> Iterator[pd.DataFrame]:
    """The raw frame tables of ``path``: ``stream_frames`` in this process for ``workers=1``, else the
    landmark stage over ``workers`` processes (None = every core; ``parallel.stream_frames_parallel``)."""
    if workers == 1:
        return stream_frames(path, settings, progress)
    from .parallel import stream_frames_parallel

    return stream_frames_parallel(path, settings, workers, progress, stop)


def stream(
    path: str | Path,
    emotion_map: mapping.Mapping,
    settings: PipelineSettings = PipelineSettings(),
    progress: bool = False,
    baseline: aus.Baseline | None = None,
    workers: int | None = 1,
) -> Iterator[tuple[Chunk, StreamState]]:
    """Yield each step's finished frame rows and the windows they complete, with the state after it.

    The last item flushes the stages (rows held for the baseline and the filter, the windows
    that end with the video). ``workers`` as for ``raw_frames``.
    """
    state = initial_state(path, settings)
    for raw in raw_frames(path, settings, progress, workers):
        chunk, state = advance(state, raw, emotion_map, settings, baseline=baseline)
        yield chunk, state
    chunk, state = advance(state, None, emotion_map, settings, final=True, baseline=baseline)
    yield chunk, state


def window_table_empty(
    emotion_map: mapping.Mapping, settings: PipelineSettings = PipelineSettings(), predictor: Any = None,
    rule_weight: float | None = None,
) -> pd.DataFrame:  # fmt: skip
    """A window table with all columns (model and ``in_event`` ones where they apply) and no rows."""
    empty_frames = frame_table_empty(settings)
    bare = windows.compute_windows(empty_frames)
    empty_windows = label_windows(bare.assign(baseline_confidence=pd.Series(dtype=float)), emotion_map)
    if predictor is not None:
        empty_windows = predictor.predict_windows(empty_frames, empty_windows, rule_weight)
    if settings.spotting is not None:
        empty_windows = empty_windows.assign(in_event=pd.Series(dtype=bool))
    counts = {"window": "int64", "start_frame": "int64", "end_frame": "int64", "n_frames": "int64"}
    times = {"start_ms": "float64", "end_ms": "float64", "face_coverage": "float64"}
    return empty_windows.astype({k: v for k, v in {**counts, **times}.items() if k in empty_windows.columns})


@functools.lru_cache(maxsize=4)
def _frame_table_empty_cached(settings: PipelineSettings) -> pd.DataFrame:
    """``frame_table_empty``, made once per settings (streaming asks for it at every held chunk); not to be modified."""
    return frame_table_empty(settings)


def frame_table_empty(settings: PipelineSettings = PipelineSettings()) -> pd.DataFrame:
    """A frame table with all columns (AUs included) and no rows."""
    raw = frame_table(landmarks.empty_batch(), settings)
    au_columns = pd.DataFrame(columns=[*aus.au_columns(), *aus.presence_columns(), *speech.OUTPUT_COLUMNS], dtype=float)
    return order_columns(pd.concat([raw, au_columns], axis=1))


def neutral_baseline(path: str | Path, settings: PipelineSettings = PipelineSettings()) -> aus.Baseline:
    """A baseline from a separate neutral clip or image folder: every face frame counts as neutral."""
    raw = pd.concat(list(stream_frames(path, settings)), ignore_index=True)
    blendshape_au, measures, blendshapes = aus.signals(raw, settings.aus)
    neutral_settings = dataclasses.replace(settings.aus, neutral_range_s=None)
    return aus.estimate_baseline(
        blendshape_au,
        measures,
        raw["time_ms"].to_numpy(),
        neutral_settings,
        source=f"neutral clip {path}",
        blendshapes=blendshapes,
        given=True,
    )


def _warn_coverage(path: str | Path, faces: int, total: int) -> None:
    if total and faces == 0:
        warnings.warn(f"{path}: no face found in any of {total} frames; AU columns are empty", AupipeWarning, 2)
    elif total and faces < total:
        warnings.warn(
            f"{path}: no face in {total - faces} of {total} frames ({100 * (total - faces) / total:.0f}%); "
            "those frames have face_found = false and empty AUs",
            AupipeWarning,
            2,
        )


def _load_predictor(model: str | Path | None, emotion_map: mapping.Mapping, settings: PipelineSettings) -> Any:
    """The trained window model (``aupipe train``), checked against mapping and windows; None without one."""
    if model is None:
        return None
    from .model import load_model

    return load_model(model, emotion_map, window_ms=settings.windows.window_ms)


@dataclass(frozen=True)
class RunSummary:
    """What ``run`` wrote: paths, frame and window counts, the baseline, and whether it was interrupted."""

    windows_path: Path
    frames_path: Path | None
    n_frames: int
    n_windows: int
    interrupted: bool
    baseline: aus.Baseline | None
    events_path: Path | None = None
    n_events: int = 0
    n_face_frames: int = 0
    summary_path: Path | None = None


class StopFlag:
    """First Ctrl-C asks the run to stop after the current chunk (``requested``; ``message``, if
    given, is printed to stderr); a second one aborts at once (KeyboardInterrupt)."""

    def __init__(self, message: str | None = None) -> None:
        self.requested = False
        self._message = message
        self._previous: object = None

    def __enter__(self) -> StopFlag:
        # A process told to ignore Ctrl-C (a batch worker: its parent decides) keeps ignoring it.
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
        ):
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        if self._message:
            print(self._message, file=sys.stderr)

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)  # type: ignore[arg-type]


@contextlib.contextmanager
def _no_interrupt() -> Iterator[None]:
    """Ctrl-C is held off for the block (a few renames); run outside the main thread, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run(
    path: str | Path,
    windows_out: str | Path,
    frames_out: str | Path | None = None,
    emotion_map: mapping.Mapping | None = None,
    settings: PipelineSettings = PipelineSettings(),
    progress: bool = True,
    baseline: aus.Baseline | None = None,
    baseline_out: str | Path | None = None,
    model: str | Path | None = None,
    rule_weight: float | None = None,
    events_out: str | Path | None = None,
    workers: int | None = 1,
    output_format: str | None = None,
    on_frames: Callable[[int], None] | None = None,
    summary_out: str | Path | None = None,
    summary_segment_s: float = 60.0,
) -> RunSummary:
    """Stream ``path`` into CSV or Parquet files; each file appears complete or not at all.

    ``workers``: processes for the landmark stage (None = every core; see ``raw_frames``).
    ``output_format``: "csv" or "parquet" for every file (None = each file's suffix, .parquet or .csv).
    ``on_frames(n)`` is called as each chunk of ``n`` frames is finished (progress reporting).
    ``summary_out`` also writes the clip summary (``aupipe.summary``: per segment of
    ``summary_segment_s`` seconds and for the whole clip).

    ``baseline`` fixes the neutral baseline (else it is estimated, see ``aus.AuSettings``);
    ``baseline_out`` also writes it as CSV. The first Ctrl-C stops after the current chunk,
    flushes the frames already processed through every stage and commits the files, so nothing
    computed is lost (``interrupted`` is then True); a second Ctrl-C, or any error, removes the
    temporary files and leaves no output.
    """
    emotion_map = emotion_map or mapping.load_mapping()
    outputs = {"windows": windows_out, "frames": frames_out, "baseline": baseline_out, "events": events_out,
               "summary": summary_out}  # fmt: skip
    check_outputs([path], outputs)  # no output may overwrite the input or another output
    summary_settings = summary.SummarySettings.for_mapping(emotion_map, summary_segment_s)
    if frames_out is None and settings.include_landmarks:
        settings = dataclasses.replace(settings, include_landmarks=False)  # 1,434 columns nobody reads
    video.probe(path, settings.video)  # fail on bad input before creating any file
    predictor = _load_predictor(model, emotion_map, settings)  # refuse a misfit model up front
    if events_out is not None and settings.spotting is None:
        raise SettingsError("events need spotting: leave PipelineSettings.spotting on to write them")
    for target in outputs.values():
        if target is not None:
            format_of(target, output_format)  # a name that contradicts the format fails before any work
    writers: dict[str, AtomicCsvWriter | AtomicParquetWriter] = {}
    n_frames = n_windows = n_events = n_faces = 0
    flags = spotting.FlagState()
    try:
        writers["windows"] = open_writer(windows_out, output_format)
        if frames_out is not None:
            writers["frames"] = open_writer(frames_out, output_format)
        if baseline_out is not None:
            writers["baseline"] = open_writer(baseline_out, output_format)
        if events_out is not None:
            writers["events"] = open_writer(events_out, output_format)
        if summary_out is not None:
            writers["summary"] = open_writer(summary_out, output_format)
        summary_state = summary.SummaryState()
        state = initial_state(path, settings)
        with StopFlag() as stop:
            raw_tables = raw_frames(path, settings, progress, workers, stop=lambda: stop.requested)
            raw: pd.DataFrame | None
            for raw in itertools.chain(raw_tables, [None]):
                final = raw is None or stop.requested
                pending = state.windows.pending  # frames the window stage still holds
                chunk, state = advance(state, raw, emotion_map, settings, final=final, baseline=baseline)
                window_rows = chunk.windows
                if predictor is not None and len(window_rows):
                    context = pd.concat(
                        [p for p in (pending, chunk.frames) if p is not None and len(p)], ignore_index=True
                    )
                    window_rows = predictor.predict_windows(context, window_rows, rule_weight)
                if settings.spotting is not None:  # windows wait until the events that may overlap them are known
                    window_rows, flags = spotting.flag_step(
                        flags, window_rows, chunk.events, state.spotting.done_ms, final=final
                    )
                writers["windows"].write(window_rows)
                if summary_out is not None:
                    summary_state = summary.step(summary_state, window_rows, chunk.events, summary_settings)
                if "frames" in writers:
                    writers["frames"].write(chunk.frames)
                if "events" in writers:
                    writers["events"].write(chunk.events)
                n_events += len(chunk.events)
                n_windows += len(chunk.windows)
                n_frames += len(chunk.frames)
                if len(chunk.frames):
                    n_faces += int(chunk.frames["face_found"].sum())
                    if on_frames is not None:
                        on_frames(len(chunk.frames))
                if final:
                    raw_tables.close()
                    break
        empty = {
            "windows": window_table_empty(emotion_map, settings, predictor, rule_weight),
            "events": spotting.empty_events(emotion_map), "frames": frame_table_empty(settings),
            "baseline": ["signal", "kind", "value", "source", "n_frames"],
            "summary": summary.table(summary.SummaryState(), summary_settings),
        }  # fmt: skip
        if "summary" in writers:
            writers["summary"].write(summary.table(summary_state, summary_settings))
        if "baseline" in writers and state.au.baseline is not None:
            writers["baseline"].write(state.au.baseline.table())
        with _no_interrupt():  # the files appear together: a Ctrl-C now cannot leave only some of them
            for name, writer in writers.items():
                writer.commit(empty[name])
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    return RunSummary(
        Path(windows_out), Path(frames_out) if frames_out else None, n_frames, n_windows, stop.requested,
        state.au.baseline, Path(events_out) if events_out else None, n_events, n_faces,
        Path(summary_out) if summary_out else None,
    )  # fmt: skip


@dataclass(frozen=True)
class AnalysisResult:
    """Result of ``aupipe.analyze``: per-frame and per-window DataFrames plus context.

    frames: one row per decoded frame (docs/outputs.md); windows: one row per window;
    baseline: the person's neutral baseline used for the AUs (``baseline.table()`` as a
    DataFrame; None when no frame was processed); video: the container's header;
    mapping_name: which emotion mapping labelled the windows; events: the spotted events;
    summary: the dominant emotions of the clip and of each minute (``aupipe.summary``).
    """

    frames: pd.DataFrame
    windows: pd.DataFrame
    baseline: aus.Baseline | None
    video: video.VideoInfo
    mapping_name: str
    events: pd.DataFrame = field(default_factory=spotting.empty_events)
    summary: pd.DataFrame = field(default_factory=lambda: summary.table(summary.SummaryState()))


def analyze(
    path: str | Path,
    emotion_map: mapping.Mapping | None = None,
    settings: PipelineSettings = PipelineSettings(),
    progress: bool = False,
    baseline: aus.Baseline | None = None,
    model: str | Path | None = None,
    rule_weight: float | None = None,
    workers: int | None = 1,
) -> AnalysisResult:
    """Run the whole pipeline on ``path`` and return the frame and window tables in memory
    (``workers`` as for ``raw_frames``)."""
    emotion_map = emotion_map or mapping.load_mapping()
    info = video.probe(path, settings.video)
    predictor = _load_predictor(model, emotion_map, settings)
    frame_parts: list[pd.DataFrame] = []
    window_parts: list[pd.DataFrame] = []
    event_parts: list[pd.DataFrame] = [spotting.empty_events(emotion_map)]
    last_state = StreamState()
    for chunk, last_state in stream(path, emotion_map, settings, progress, baseline, workers):  # noqa: B007
        if len(chunk.frames):
            frame_parts.append(chunk.frames)
        window_parts.append(chunk.windows)
        event_parts.append(chunk.events)
    frames = pd.concat(frame_parts, ignore_index=True) if frame_parts else frame_table_empty(settings)
    window_table = pd.concat([w for w in window_parts if len(w)] or window_parts[-1:], ignore_index=True)
    if predictor is not None:
        window_table = predictor.predict_windows(frames, window_table, rule_weight)
    events = pd.concat([e for e in event_parts if len(e)] or event_parts[:1], ignore_index=True)
    if settings.spotting is not None:
        window_table["in_event"] = spotting.flag_windows(window_table, events).to_numpy()
    clip_summary = summary.summarize(window_table, events, summary.SummarySettings.for_mapping(emotion_map))
    return AnalysisResult(frames, window_table, last_state.au.baseline, info, emotion_map.name, events, clip_summary)
