"""``run``: stream a video through the chain into CSV or Parquet files, atomically, with Ctrl-C
handling that keeps everything computed so far."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from aupipe.chain.faces import insert_face_id
from aupipe.chain.frames import frame_table_empty
from aupipe.chain.parallel import raw_frames
from aupipe.chain.settings import PipelineSettings
from aupipe.chain.stream import advance, initial_state, window_table_empty
from aupipe.errors import SettingsError
from aupipe.events import interaction, spotting, summary
from aupipe.io.annotations import AtomicBorisWriter, AtomicEafWriter, boris_format, is_elan, open_annotation_writer
from aupipe.io.writers import AtomicCsvWriter, AtomicParquetWriter, check_outputs, format_of, open_writer
from aupipe.reporting import collect
from aupipe.running import faces
from aupipe.reporting import page as report_page
from aupipe.rules import mapping
from aupipe.signal import aus, video

__all__ = ["RunSummary", "StopFlag", "load_predictor", "run"]


def load_predictor(model: str | Path | None, emotion_map: mapping.Mapping, settings: PipelineSettings) -> Any:
    """The trained window model (``aupipe train``), checked against mapping and windows; None without one."""
    if model is None:
        return None
    from aupipe.learning.model import load_model

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
    n_face_frames: int = 0  # frames with a face (with several faces: with at least one)
    summary_path: Path | None = None
    events_paths: tuple[Path, ...] = ()  # every --events file (tables and .eaf), events_path the first
    boris_path: Path | None = None
    report_path: Path | None = None  # --report: the HTML page (docs/report.md)
    png_path: Path | None = None  # --png: the report's summary image
    interaction_path: Path | None = None  # --interaction: synchrony and mimicry between faces
    face_ids: tuple[int, ...] = (0,)  # the faces in the tables
    n_rows: int = 0  # frame-table rows: frames x faces


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
def no_interrupt() -> Iterator[None]:
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
    events_out: str | Path | Sequence[str | Path] | None = None,
    workers: int | None = 1,
    output_format: str | None = None,
    on_frames: Callable[[int], None] | None = None,
    summary_out: str | Path | None = None,
    summary_segment_s: float = 60.0,
    boris_out: str | Path | None = None,
    report_out: str | Path | None = None,
    png_out: str | Path | None = None,
    interaction_out: str | Path | None = None,
) -> RunSummary:
    """Stream ``path`` into CSV or Parquet files; each file appears complete or not at all.

    ``workers``: processes for the landmark stage (None = every core; see ``raw_frames``).
    ``output_format``: "csv" or "parquet" for every file (None = each file's suffix, .parquet or .csv).
    ``on_frames(n)`` is called as each chunk of ``n`` frames is finished (progress reporting).
    ``summary_out`` also writes the clip summary (``aupipe.events.summary``: per segment of
    ``summary_segment_s`` seconds and for the whole clip).
    ``events_out``: one path or several; each is the events table (CSV / Parquet, by suffix) or,
    named ``.eaf``, an ELAN file of the events and the window labels, linked to the video
    (``aupipe.io.annotations``). ``boris_out``: a BORIS import sheet of the events (``.csv`` or
    ``.xlsx``). These are written at the end, with the tables (docs/outputs.md). ``report_out``:
    the report page (HTML), ``png_out``: its summary image, built at the end from this run's
    tables and written with them (``aupipe.reporting``, docs/report.md). ``interaction_out``: the
    between-face table (synchrony and mimicry, ``aupipe.events.interaction``; several faces).

    ``baseline`` fixes the neutral baseline (else it is estimated, see ``aus.AuSettings``);
    ``baseline_out`` also writes it as CSV. The first Ctrl-C stops after the current chunk,
    flushes the frames already processed through every stage and commits the files, so nothing
    computed is lost (``interrupted`` is then True); a second Ctrl-C, or any error, removes the
    temporary files and leaves no output.
    """
    emotion_map = emotion_map or mapping.load_mapping()
    events_paths = [events_out] if isinstance(events_out, str | Path) else list(events_out or [])
    outputs = {"windows": windows_out, "frames": frames_out, "baseline": baseline_out,
               **{"events" if i == 0 else f"events #{i + 1}": target for i, target in enumerate(events_paths)},
               "summary": summary_out, "boris": boris_out, "interaction": interaction_out}  # fmt: skip
    pages = {"report": report_out, "png": png_out}  # the report: built at the end, from this run's tables
    check_outputs([path], {**outputs, **pages})  # no output may overwrite the input or another output
    annotated = {name: "elan" for name, target in outputs.items() if name.startswith("events") and is_elan(target)}
    if boris_out is not None:
        annotated["boris"] = "boris"
        boris_format(boris_out)  # .csv or .xlsx (with openpyxl), before any work
    summary_settings = summary.SummarySettings.for_mapping(emotion_map, summary_segment_s)
    if frames_out is None and settings.include_landmarks:
        settings = dataclasses.replace(settings, include_landmarks=False)  # 1,434 columns nobody reads
    info = video.probe(path, settings.video)  # fail on bad input before creating any file
    media = None if info.is_image_folder else Path(path)  # what the ELAN and BORIS files link to
    predictor = load_predictor(model, emotion_map, settings)  # refuse a misfit model up front
    if interaction_out is not None and not settings.several_faces:
        raise SettingsError("the interaction table is between faces: ask for 2 or more (--faces N)")
    if (events_paths or boris_out is not None) and settings.spotting is None:
        raise SettingsError("events need spotting: leave PipelineSettings.spotting on to write them")
    for name, target in outputs.items():
        if target is not None and name not in annotated:
            format_of(target, output_format)  # a name that contradicts the format fails before any work
    writers: dict[str, AtomicCsvWriter | AtomicParquetWriter] = {}
    annotators: dict[str, AtomicEafWriter | AtomicBorisWriter] = {}  # ELAN / BORIS: all events at commit
    n_frames = n_windows = n_events = n_faces = n_rows = 0
    face_ids: set[int] = set()
    flags: dict[int, spotting.FlagState] = {}
    collector = collect.RunCollector() if report_out is not None or png_out is not None else None
    with contextlib.ExitStack() as files:  # leaving it without the commits below drops every file
        page_writers = report_page.open_pages(files, report_out, png_out)
        for name, target in outputs.items():
            if target is not None and name in annotated:
                annotators[name] = files.enter_context(
                    open_annotation_writer(target, annotated[name], media, info.fps, settings.windows.stride_ms)
                )
            elif target is not None:
                writers[name] = files.enter_context(open_writer(target, output_format))
        summary_states: dict[int, summary.SummaryState] = {}
        state = initial_state(path, settings)
        with StopFlag() as stop:
            raw_tables = raw_frames(path, settings, progress, workers, stop=lambda: stop.requested)
            raw: pd.DataFrame | None
            for raw in itertools.chain(raw_tables, [None]):
                final = raw is None or stop.requested
                pending = faces.pending_frames(state)  # frames each face's window stage still holds
                chunk, state = advance(state, raw, emotion_map, settings, final=final, baseline=baseline)
                window_rows = faces.predict_faces(predictor, pending, chunk.frames, chunk.windows, rule_weight)
                if settings.spotting is not None:  # windows wait until the events that may overlap them are known
                    window_rows, flags = faces.flag_faces(flags, window_rows, chunk.events, state, final)
                writers["windows"].write(window_rows)
                if summary_out is not None:
                    summary_states = faces.summary_faces(summary_states, window_rows, chunk.events, summary_settings)
                if "frames" in writers:
                    writers["frames"].write(chunk.frames)
                for name, writer in writers.items():
                    if name.startswith("events"):
                        writer.write(chunk.events)
                if "interaction" in writers:
                    writers["interaction"].write(chunk.interaction)
                for annotator in annotators.values():
                    annotator.write(chunk.events)
                    annotator.write_windows(window_rows)
                if collector is not None:
                    collector.add(chunk.frames, window_rows, chunk.events)
                n_events += len(chunk.events)
                n_windows += len(chunk.windows)
                n_rows += len(chunk.frames)
                if len(chunk.frames):
                    face_ids.update(int(i) for i in chunk.frames["face_id"].unique())
                    first_face = chunk.frames["face_id"].to_numpy() == 0  # face 0 has a row for every frame
                    n_frames += int(first_face.sum())
                    n_faces += int(chunk.frames["face_found"].to_numpy(bool)[first_face].sum())
                    if on_frames is not None:
                        on_frames(len(chunk.frames))
                if final:
                    raw_tables.close()
                    break
        empty = {
            "windows": window_table_empty(emotion_map, settings, predictor, rule_weight),
            "events": insert_face_id(spotting.empty_events(emotion_map), 0, after="event"),
            "frames": insert_face_id(frame_table_empty(settings), 0, after="frame"),
            "baseline": ["face_id", "signal", "kind", "value", "source", "n_frames"],
            "summary": faces.summary_table({}, summary_settings),
            "interaction": interaction.empty_interaction(),
        }  # fmt: skip
        if "summary" in writers:
            writers["summary"].write(faces.summary_table(summary_states, summary_settings))
        if "baseline" in writers:
            for face_id, face_baseline in sorted(state.baselines().items()):
                writers["baseline"].write(insert_face_id(face_baseline.table(), face_id))
        for annotator in annotators.values():
            annotator.finish(empty["events"])  # ELAN / BORIS content, built before any file is renamed
        if collector is not None:
            baseline_table = state.au.baseline.table() if state.au.baseline is not None else None
            summary_table = faces.summary_table(summary_states, summary_settings) if summary_out is not None else None
            events_table = empty["events"] if settings.spotting is not None else None
            tables = collector.tables(empty["windows"], baseline_table, summary_table, events_table)
            built = report_page.build(path, tables, info, emotion_map, video_settings=settings.video)
            report_page.fill_pages(page_writers, built)
        with no_interrupt():  # the files appear together: a Ctrl-C now cannot leave only some of them
            for name, writer in writers.items():
                writer.commit(empty[name.split(" #")[0]])
            for annotator in annotators.values():
                annotator.commit()
            for page_writer in page_writers.values():
                page_writer.commit()
    if settings.several_faces:
        n_faces = state.tracker.n_frames_with_face  # frames with any face, not face 0's only
    return RunSummary(
        Path(windows_out), Path(frames_out) if frames_out else None, n_frames, n_windows, stop.requested,
        state.au.baseline, Path(events_paths[0]) if events_paths else None, n_events, n_faces,
        Path(summary_out) if summary_out else None, tuple(Path(p) for p in events_paths),
        Path(boris_out) if boris_out else None, Path(report_out) if report_out else None,
        Path(png_out) if png_out else None, Path(interaction_out) if interaction_out else None,
        tuple(sorted(face_ids)) or (0,), n_rows,
    )  # fmt: skip
