"""aupipe: facial Action Units and fine-grained emotions from video, the way a FACS coder reads them.

Public API (each stage module — ``video``, ``landmarks``, ``normalize``, ``aus``, ``windows``,
``mapping`` — is importable on its own, so one stage can be swapped):

- ``analyze(path, mapping=None, window_ms=500, stride_ms=100)`` -> ``AnalysisResult`` with
  ``.frames`` and ``.windows`` DataFrames (the same columns as the CSVs of ``aupipe run``).
- ``run(path, windows_out, frames_out=None, mapping=None, ...)`` -> ``RunSummary``: the same,
  streamed into CSV or Parquet files written atomically.
- ``batch(inputs, out_dir, ...)`` -> ``BatchSummary``: ``run`` over many videos, resumable, with a
  manifest and one dataset-level Parquet of all windows (``aupipe.running.batching``).
- ``calibrate(videos, reference, out_dir)`` -> ``CalibrationResult``: fit the AU intensities to a
  lab's own reference codes; use it with ``analyze(..., au_calibration=out_dir)``.
- ``load_mapping(name_or_path)`` -> ``Mapping``; ``score_emotions(intensity, mapping)`` -> scores.
- ``report(video, tables, out_html=None, png=None)`` -> ``Report``: one self-contained HTML page
  (timeline, event cards with face stills, AU panels) and a summary PNG from a video's tables
  or an ``AnalysisResult``; ``.figures`` are matplotlib figures (docs/report.md).
- ``live(source, ...)`` -> iterator of records (dicts with ``type``: frame, window, window_update,
  event, label, status, start, end) from a camera, a stream URL or a file played in real time
  (docs/live.md).
- ``import_frames(path, kind="openface")`` -> frame table of an OpenFace / py-feat CSV;
  ``analyze_frames(frames_or_path, ...)`` -> ``AnalysisResult`` and ``run_frames(path, windows_out, ...)``
  -> files: windows, mapping and spotting on existing AU archives (docs/import.md).
- Errors: ``AupipeError`` and its subclasses ``InputError``, ``SettingsError``, ``MappingError``,
  ``OutputError``, ``ModelError``;
  warnings: ``AupipeWarning``.

Heavy libraries (pandas, OpenCV, MediaPipe) load on first use, so ``import aupipe`` is cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from aupipe.errors import AupipeError, AupipeWarning, InputError, MappingError, ModelError, OutputError, SettingsError

if TYPE_CHECKING:
    import pandas as pd

    from aupipe.running.batching import BatchSummary
    from aupipe.learning.calibration_fit import CalibrationResult
    from aupipe.rules.mapping import Mapping
    from aupipe.running.analyze import AnalysisResult
    from aupipe.chain.settings import PipelineSettings
    from aupipe.reporting.page import Report, ReportSettings
    from aupipe.running.imported import ImportSummary
    from aupipe.running.run import RunSummary

from .version import __version__

__all__ = [
    "AnalysisResult",
    "AupipeError",
    "AupipeWarning",
    "BatchSummary",
    "CalibrationResult",
    "InputError",
    "Mapping",
    "MappingError",
    "ModelError",
    "OutputError",
    "PipelineSettings",
    "Report",
    "RunSummary",
    "SettingsError",
    "__version__",
    "analyze",
    "analyze_frames",
    "batch",
    "calibrate",
    "import_frames",
    "live",
    "load_mapping",
    "report",
    "run",
    "run_frames",
    "score_emotions",
]


def _settings(
    window_ms: float,
    stride_ms: float,
    settings: PipelineSettings | None,
    au_calibration: str | Path | None = None,
    faces: int | None = None,
) -> PipelineSettings:
    import dataclasses

    from aupipe.chain.settings import PipelineSettings
    from aupipe.signal.windows import WindowSettings

    base = settings or PipelineSettings()
    if au_calibration is not None:
        from aupipe.signal.calibration import load_calibration

        load_calibration(str(au_calibration))  # fail on a missing or broken calibration before any work
        base = dataclasses.replace(base, aus=dataclasses.replace(base.aus, calibration=str(au_calibration)))
    if faces is not None:
        if isinstance(faces, bool) or not isinstance(faces, int) or faces < 1:
            raise SettingsError(f"faces must be a whole number >= 1, got {faces!r}")
        base = dataclasses.replace(base, landmarks=dataclasses.replace(base.landmarks, num_faces=faces))
    return dataclasses.replace(base, windows=WindowSettings(window_ms=window_ms, stride_ms=stride_ms))


def _baseline(
    neutral: str | Path | tuple[float, float] | None, settings: PipelineSettings
) -> tuple[PipelineSettings, Any]:
    """Turn ``neutral`` (a (start_s, end_s) range, "0-2s", or a neutral clip/image path) into settings."""
    import dataclasses
    import re

    if neutral is None:
        return settings, None
    if isinstance(neutral, str) and (match := re.fullmatch(r"\s*([\d.]+)\s*-\s*([\d.]+)\s*s?\s*", neutral)):
        neutral = (float(match.group(1)), float(match.group(2)))
    if isinstance(neutral, tuple):
        start_s, end_s = neutral
        if not 0 <= start_s < end_s:
            raise InputError(f"neutral range {start_s:g}-{end_s:g} s: start must be >= 0 and before the end")
        return dataclasses.replace(
            settings, aus=dataclasses.replace(settings.aus, neutral_range_s=(start_s, end_s))
        ), None
    from aupipe.chain.stream import neutral_baseline

    return settings, neutral_baseline(neutral, settings)


def _mapping(mapping: str | Path | Mapping | None) -> Mapping:
    from aupipe.rules.mapping import Mapping as MappingType
    from aupipe.rules.mapping import load_mapping as load

    return mapping if isinstance(mapping, MappingType) else load(mapping)


def analyze(
    path: str | Path,
    mapping: str | Path | Mapping | None = None,
    window_ms: float = 500.0,
    stride_ms: float = 100.0,
    *,
    neutral: str | Path | tuple[float, float] | None = None,
    model: str | Path | None = None,
    rule_weight: float | None = None,
    settings: PipelineSettings | None = None,
    progress: bool = False,
    workers: int | None = 1,
    au_calibration: str | Path | None = None,
    faces: int | None = None,
) -> AnalysisResult:
    """Analyse a video file (or a folder of images) and return its frame and window tables.

    mapping: a shipped mapping name (``micro_emotions``, the default; ``basic_emotions``;
    ``casme2``), a YAML path, or a loaded ``Mapping``. window_ms / stride_ms: sliding windows
    in milliseconds. neutral: where the person's neutral face is — a (start_s, end_s) range of
    this video, a string like ``"0-2s"``, or the path of a separate neutral clip or image;
    None estimates it from the video (see docs/aus.md). model: a folder written by
    ``aupipe train``; adds ``prob_<label>``, ``model_label`` and a fused ``final_label`` per
    window (``rule_weight`` 0..1 weighs the mapping's scores in it). ``settings`` overrides any stage's
    settings (``PipelineSettings``). Returns ``AnalysisResult`` with ``.frames`` (one row per
    frame), ``.windows`` (with ``in_event``), ``.events`` (spotted micro / macro expressions,
    docs/spotting.md) and ``.baseline``. workers: processes for the landmark stage of a long video
    (None = every core; each takes a span of the video, docs/performance.md; a script that
    uses more than one must call aupipe under ``if __name__ == "__main__":``). au_calibration:
    a folder written by ``calibrate`` (or "hand" for the hand scales); None = the shipped
    calibration (docs/aus.md). faces: follow up to this many faces (default 1, or ``settings``'
    ``landmarks.num_faces``): every table gets ``face_id``, each face its own baseline, windows,
    events and summary, ``result.face(i)`` one face's tables (docs/faces.md). Raises
    ``InputError`` for a missing, unreadable, corrupt or empty video.
    """
    from aupipe.running.analyze import analyze as analyze_video

    emotion_map = _mapping(mapping)
    chosen, baseline = _baseline(neutral, _settings(window_ms, stride_ms, settings, au_calibration, faces))
    return analyze_video(path, emotion_map, chosen, progress, baseline, model, rule_weight, workers)


def run(
    path: str | Path,
    windows_out: str | Path,
    frames_out: str | Path | None = None,
    mapping: str | Path | Mapping | None = None,
    window_ms: float = 500.0,
    stride_ms: float = 100.0,
    *,
    neutral: str | Path | tuple[float, float] | None = None,
    baseline_out: str | Path | None = None,
    model: str | Path | None = None,
    rule_weight: float | None = None,
    events_out: str | Path | list[str | Path] | None = None,
    settings: PipelineSettings | None = None,
    progress: bool = True,
    workers: int | None = 1,
    output_format: str | None = None,
    au_calibration: str | Path | None = None,
    summary_out: str | Path | None = None,
    summary_segment_s: float = 60.0,
    boris_out: str | Path | None = None,
    report_out: str | Path | None = None,
    png_out: str | Path | None = None,
    faces: int | None = None,
    interaction_out: str | Path | None = None,
) -> RunSummary:
    """Analyse ``path`` and stream the window table (and optionally the frame table) to CSV or Parquet.

    ``neutral``, ``model`` and ``rule_weight`` as for ``analyze``; ``events_out`` also writes the
    spotted expression events (micro / macro, docs/spotting.md); ``baseline_out`` also writes the baseline used as CSV.
    Files are written to a temporary name and renamed when complete; a first Ctrl-C stops
    early and keeps everything computed so far (``RunSummary.interrupted``). ``workers`` as for
    ``analyze``. ``output_format``: "csv" or "parquet" for every file; None takes each file's
    suffix (``.parquet`` / ``.pq`` is Parquet, anything else CSV). ``au_calibration`` as for ``analyze``.
    ``summary_out`` also writes the clip summary (``AnalysisResult.summary``: the dominant emotion
    of the clip and of every ``summary_segment_s`` seconds). ``events_out`` may be a list of
    paths; one named ``.eaf`` is an ELAN file (events and window labels, linked to the video),
    and ``boris_out`` (``.csv`` / ``.xlsx``) a BORIS import sheet of the events (docs/outputs.md).
    ``report_out`` / ``png_out``: the report page and its summary image, from this run's tables
    (as ``report``; written with the other files). No output may be the input or another output
    (OutputError, exit 4, before any work). ``faces`` as for ``analyze``: rows of every face,
    each with its ``face_id``, in time order; ``interaction_out`` also writes the between-face
    table (synchrony and mimicry of AUs, docs/faces.md).
    """
    from aupipe.running.run import run as run_video

    emotion_map = _mapping(mapping)
    chosen, baseline = _baseline(neutral, _settings(window_ms, stride_ms, settings, au_calibration, faces))
    return run_video(
        path, windows_out, frames_out, emotion_map, chosen, progress, baseline, baseline_out, model, rule_weight,
        events_out, workers, output_format, summary_out=summary_out, summary_segment_s=summary_segment_s,
        boris_out=boris_out, report_out=report_out, png_out=png_out, interaction_out=interaction_out,
    )  # fmt: skip


def report(
    video: str | Path,
    tables: Any,
    out_html: str | Path | None = None,
    png: str | Path | None = None,
    *,
    mapping: str | Path | Mapping | None = None,
    partial: bool = False,
    settings: ReportSettings | None = None,
) -> Report:
    """The report of ``video``: one HTML page that works offline (overview, zoomable AU timeline
    with the emotion ribbon and event bands, one card per event with face stills, one panel per
    AU) and, with ``png``, the timeline and the top events in one image (docs/report.md).

    tables: an ``AnalysisResult`` of ``analyze(video)``, or the tables ``aupipe run`` wrote: a
    folder (``<video stem>.windows.csv``, ``.frames``, ``.events``, ``.summary``, ``.baseline``) or
    a list of folders and table files. mapping: the mapping that labelled the windows, for its
    rules (default: the shipped one whose categories fit). partial: accept tables shorter than
    the video (an interrupted run). Returns ``Report`` (``.html``, ``.figures``: matplotlib
    figures ``timeline``, ``aus``, ``summary``); writes ``out_html`` / ``png`` atomically when
    given. Tables of another video raise ``InputError``; an output that is an input ``OutputError``.
    """
    from aupipe.reporting.page import ReportSettings, from_result, from_sources

    chosen = settings or ReportSettings()
    if hasattr(tables, "windows") and hasattr(tables, "video"):
        return from_result(video, tables, out_html, png, mapping, chosen)
    sources = [tables] if isinstance(tables, str | Path) else list(tables)
    return from_sources(video, sources, out_html, png, mapping, partial, chosen)


def live(
    source: str | int | Path,
    mapping: str | Path | Mapping | None = None,
    *,
    faces: int | None = None,
    realtime: bool = True,
    drop: bool = True,
    calibration_s: float = 5.0,
    out_dir: str | Path | None = None,
    rotate_min: float | None = None,
    table_format: str = "csv",
    frame_table: bool = False,
    frames: bool = True,
    settings: PipelineSettings | None = None,
    stop: Any = None,
    preview: Any = None,
) -> Any:
    """Run aupipe on a live source and yield what it finds as it happens: ``for record in
    aupipe.live(0): ...``. source: a camera index (0), a stream URL (``rtsp://...``, anything
    OpenCV/FFmpeg opens) or a video file (played at its own pace with ``realtime``; as fast as
    it goes without). Each record is a dict with a ``type``: ``frame`` (one face of one frame,
    once its AUs are final), ``window`` (when it closes), ``window_update`` (an event came out
    that overlaps an earlier window), ``event``, ``label`` (a face's label changed), ``status``,
    ``start``, ``end``; fields, units and bounds in docs/live.md, schema in
    ``aupipe/schemas/live.schema.json``. drop: when processing falls behind, drop frames (counted
    in ``status`` and ``end``) rather than queue them; False (files only) waits instead.
    calibration_s: the neutral baseline comes from the first seconds (nothing comes out
    before). out_dir: also write the window and event (and with ``frame_table`` the frame)
    tables there, a new set every ``rotate_min`` minutes, each file whole once done. frames:
    send ``frame`` records. faces, mapping, settings as for ``analyze``. stop(): checked between
    frames; True ends the run as a source ending would (everything flushed and written).
    """
    import dataclasses

    from aupipe.running.live import LiveSettings, live_pipeline_settings
    from aupipe.running.live import live as live_records
    from aupipe.signal.live_source import SourceSettings, describe_source

    describe_source(source)  # a missing file fails now, not at the first record
    base = settings or live_pipeline_settings(calibration_s)
    if settings is not None:
        base = dataclasses.replace(base, aus=dataclasses.replace(base.aus, calibration_s=calibration_s))
    chosen = _settings(base.windows.window_ms, base.windows.stride_ms, base, faces=faces)
    return live_records(
        source, _mapping(mapping), chosen, SourceSettings(drop=drop, realtime=realtime),
        LiveSettings(frames=frames, rotate_min=rotate_min, table_format=table_format, frame_table=frame_table),
        out_dir, stop, preview,
    )  # fmt: skip


def batch(
    inputs: str | Path | list[str | Path],
    out_dir: str | Path,
    mapping: str | Path | Mapping | None = None,
    window_ms: float = 500.0,
    stride_ms: float = 100.0,
    *,
    model: str | Path | None = None,
    rule_weight: float | None = None,
    settings: PipelineSettings | None = None,
    output_format: str = "csv",
    frames: bool = False,
    events: bool = False,
    events_format: str = "table",
    workers: int | None = None,
    engine: str = "local",
    address: str | None = None,
    retry_errors: bool = False,
    progress: bool = True,
    faces: int | None = None,
) -> BatchSummary:
    """Analyse many videos into ``out_dir``: per video ``<key>.windows.csv`` (``.frames`` / ``.events``
    with ``frames`` / ``events``; ``.parquet`` with ``output_format="parquet"``), plus
    ``manifest.csv`` (status, frames, face coverage, seconds, error per video) and
    ``windows.parquet`` (every video's windows, column ``video``).

    inputs: folders (searched recursively), glob patterns, list files (``.txt``: one path per
    line) or videos. Resumable: a re-run skips videos whose content and settings are unchanged
    (``retry_errors`` retries failed ones). A bad video is recorded as ``error`` in the manifest
    and never stops the batch. workers: videos processed at once (None = every core). engine:
    ``"local"`` processes, or ``"ray"`` (extra ``aupipe[ray]``) on the cluster at ``address``
    or a local Ray instance. ``mapping``, ``window_ms``, ``stride_ms``, ``model``,
    ``rule_weight``, ``settings`` as for ``analyze``. ``events_format="eaf"`` writes each video's
    events as an ELAN file ``<key>.events.eaf`` instead of a table (docs/outputs.md). Call under
    ``if __name__ == "__main__":`` in a script (worker processes re-import it). See docs/performance.md.
    ``faces`` as for ``analyze``.
    """
    from aupipe.running.batching import BatchJob, run_batch

    job = BatchJob(
        settings=_settings(window_ms, stride_ms, settings, faces=faces), emotion_map=_mapping(mapping),
        model=str(model) if model is not None else None, rule_weight=rule_weight, output_format=output_format,
        frames=frames, events=events, events_format=events_format,
    )  # fmt: skip
    if output_format not in ("csv", "parquet"):
        raise OutputError(f"unknown output format {output_format!r}; choose csv or parquet")
    if events_format not in ("table", "eaf"):
        raise OutputError(f"unknown events format {events_format!r}; choose table or eaf")
    items = [inputs] if isinstance(inputs, str | Path) else list(inputs)
    return run_batch(items, out_dir, job, workers, engine, address, progress, retry_errors)


def calibrate(
    videos: str | Path | list[str | Path],
    reference: str | Path,
    out_dir: str | Path | None = None,
    *,
    kind: str = "auto",
    groups: str | Path | dict[str, str] | None = None,
    cache_dir: str | Path | None = None,
    keep_hand: tuple[str, ...] = (),
    log: Any = None,
) -> CalibrationResult:
    """Fit aupipe's per-AU calibration to a lab's reference codes and write it to ``out_dir``.

    videos: files, folders or glob patterns. reference: a folder with one CSV per video (same
    file stem) or one CSV for one video: FACS codes (``frame`` or ``time_s``, ``AUxx`` 0-5 or
    A-E), OpenFace (``AUxx_r``) or py-feat (``AUxx`` 0-1); ``kind`` forces one. groups: a CSV
    ``video,person`` (or a dict stem -> person) naming videos of the same person; held-out
    agreement is person-grouped. ``cache_dir`` keeps the landmark tables for refits;
    ``keep_hand``: AUs (``"AU04"``...) whose reference you do not trust, reported but left on
    the hand scales; ``log`` gets progress lines. Returns ``CalibrationResult`` (``.calibration``, ``.agreement``:
    held-out r, ICC(3,1), presence F1 and per-person r per AU and form). Bad reference files
    raise ``InputError`` with one line. See docs/aus.md.
    """
    from aupipe.signal.aus import AU_NAMES
    from aupipe.learning.calibration_fit import CalibrationSettings
    from aupipe.learning.calibration_fit import calibrate as fit

    unknown = [au for au in keep_hand if au not in AU_NAMES]
    if unknown:
        raise InputError(f"keep_hand: unknown AU {unknown[0]!r}; use names like AU04 ({', '.join(AU_NAMES)})")
    items = [videos] if isinstance(videos, str | Path) else list(videos)
    return fit(items, reference, out_dir, kind, groups, cache_dir, CalibrationSettings(keep_hand=tuple(keep_hand)), log)


def load_mapping(name_or_path: str | Path | None = None) -> Mapping:
    """Load and validate an emotion mapping: a shipped name, a YAML path, or None (micro_emotions)."""
    from aupipe.rules.mapping import load_mapping as load

    return load(name_or_path)


def score_emotions(intensity: pd.DataFrame, mapping: str | Path | Mapping | None = None) -> pd.DataFrame:
    """Score AU intensities (columns ``AU12``, ``AU12_left``..., 0-5) with a mapping; see docs/mapping.md."""
    from aupipe.rules.mapping import score

    return score(intensity, _mapping(mapping))


def import_frames(
    path: str | Path, kind: str = "openface", *, fps: float | None = None, face_id: int | None = None
) -> pd.DataFrame:
    """Read another tool's per-frame AUs into aupipe's frame table (docs/import.md), streamed in chunks.

    kind: ``"openface"`` (OpenFace 2.x FeatureExtraction CSV: ``AUxx_r`` 0-5 as is, ``AUxx_c``
    presence, ``timestamp`` s, ``success``, ``pose_R*``) or ``"pyfeat"`` (``Fex.to_csv``: ``AUxx``
    0-1 scores times 5). fps: frames/s, only for a file without a time column (py-feat's); face_id:
    the OpenFace face to keep (default the lowest). Returns one row per frame: ``frame`` (0-based),
    ``time_ms``, ``face_found``, head pose, ``AUxx_r``, sided (NaN), ``AUxx_c``; ``.attrs``
    ``missing_columns`` / ``empty_columns`` / ``note`` say what a video's table would have more.
    Bad files raise ``InputError`` with one line.
    """
    from aupipe.running.imported import import_frames as read

    return read(path, kind, fps, face_id)


def analyze_frames(
    frames_or_path: pd.DataFrame | str | Path,
    mapping: str | Path | Mapping | None = None,
    kind: str = "openface",
    window_ms: float = 500.0,
    stride_ms: float = 100.0,
    *,
    fps: float | None = None,
    face_id: int | None = None,
    settings: PipelineSettings | None = None,
) -> AnalysisResult:
    """``analyze`` for AUs already measured: windows, mapping labels, events and summary of a frame table
    (a DataFrame in the frame table's layout, e.g. from ``import_frames``) or of an OpenFace / py-feat
    CSV (``kind``, ``fps``, ``face_id`` as for ``import_frames``). The same stage chain as for a video,
    with the frame stages replaced; ``.baseline`` is None. See docs/import.md for what differs.
    """
    from aupipe.running.imported import analyze_frames as analyze_table

    chosen = _settings(window_ms, stride_ms, settings)
    return analyze_table(frames_or_path, _mapping(mapping), chosen, kind, fps, face_id)


def run_frames(
    path: str | Path,
    windows_out: str | Path,
    frames_out: str | Path | None = None,
    mapping: str | Path | Mapping | None = None,
    kind: str = "openface",
    window_ms: float = 500.0,
    stride_ms: float = 100.0,
    *,
    events_out: str | Path | None = None,
    summary_out: str | Path | None = None,
    fps: float | None = None,
    face_id: int | None = None,
    settings: PipelineSettings | None = None,
    output_format: str | None = None,
    summary_segment_s: float = 60.0,
) -> ImportSummary:
    """``run`` for an OpenFace / py-feat CSV (``aupipe import``): stream it through windows, mapping and
    spotting into files written atomically (the frame table's, with ``frames_out``). Returns an
    ``ImportSummary`` (a ``RunSummary`` plus ``note``, ``missing_columns``, ``empty_columns``).
    No output may be the input or another output (``OutputError``, exit 4); docs/import.md.
    """
    from aupipe.running.imported import run_frames as run_table

    chosen = _settings(window_ms, stride_ms, settings)
    return run_table(
        path, windows_out, frames_out, _mapping(mapping), chosen, kind, events_out, summary_out, fps, face_id,
        output_format, summary_segment_s,
    )  # fmt: skip


def __getattr__(name: str) -> Any:
    """Result and settings types load lazily (they pull in pandas)."""
    if name == "PipelineSettings":
        from aupipe.chain.settings import PipelineSettings

        return PipelineSettings
    if name == "AnalysisResult":
        from aupipe.running.analyze import AnalysisResult

        return AnalysisResult
    if name == "RunSummary":
        from aupipe.running.run import RunSummary

        return RunSummary
    if name == "Report":
        from aupipe.reporting.page import Report

        return Report
    if name == "BatchSummary":
        from aupipe.running.batching import BatchSummary

        return BatchSummary
    if name == "CalibrationResult":
        from aupipe.learning.calibration_fit import CalibrationResult

        return CalibrationResult
    if name == "Mapping":
        from aupipe.rules import mapping

        return mapping.Mapping
    raise AttributeError(f"module 'aupipe' has no attribute {name!r}")
