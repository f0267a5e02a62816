"""Per-frame AUs from another tool (OpenFace 2.x ``FeatureExtraction``, py-feat ``Fex.to_csv``) as
aupipe frame rows, streamed through the one stage chain (docs/import.md).

``open_source`` reads a file's header and decides what each column means; ``read_chunks`` streams
its rows (``chunk_rows`` at a time, never the whole file) as *source rows*: ``frame`` (int, 0-based),
``time_ms`` (float, ms), ``face_found`` (bool), ``pitch_deg`` / ``yaw_deg`` / ``roll_deg`` (deg,
when the file has head pose), ``AUxx`` (the tool's intensity on its own scale) and ``AUxx_c``
(the tool's presence, 0/1, where it gives one); NaN where the frame has no face. The frame stage
``ImportedAuStage`` turns them into frame-table rows (``AUxx_r`` on 0-5, sided AUs, ``AUxx_c``)
and ``imported_chain`` puts it in place of the video frame stages of ``build_chain``, so the
window, mapping and event stages run exactly as for a video.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from aupipe.chain.au_csv import (
    PRESENCE_COLUMN, TIME_COLUMNS, CsvHead, au_column_map, check_range, detect_kind, first_line, numbers, read_text, sniff,
)  # fmt: skip
from aupipe.chain.frames import frame_table_empty_cached
from aupipe.chain.settings import PipelineSettings
from aupipe.chain.stages import Chain, ColumnOrderStage, build_chain
from aupipe.chain.stream import Chunk, StreamState, advance
from aupipe.errors import AupipeWarning, InputError, SettingsError
from aupipe.rules import mapping
from aupipe.signal import aus

__all__ = [
    "CHUNK_ROWS", "KINDS", "NAMES", "POSE_COLUMNS", "SCALES", "ImportSource", "ImportedAuStage", "frame_rows",
    "frames_chain", "imported_chain", "open_source", "read_chunks", "stream_imported", "stream_table",
]  # fmt: skip

KINDS: tuple[str, ...] = ("openface", "pyfeat")
NAMES: dict[str, str] = {"openface": "OpenFace", "pyfeat": "py-feat"}
#: Tool's AU unit -> aupipe's 0-5: OpenFace's ``AUxx_r`` are 0-5 already; py-feat's ``AUxx`` are 0-1 scores.
SCALES: dict[str, float] = {"openface": 1.0, "pyfeat": 5.0}
#: The top of each tool's AU range, on its own scale (values above it are refused), and its name.
TOPS: dict[str, tuple[float, str]] = {
    "openface": (5.0, "OpenFace intensities AUxx_r are 0-5"), "pyfeat": (1.0, "py-feat AU scores are 0-1"),
}  # fmt: skip
#: Frame numbering of each tool's ``frame`` column (OpenFace counts from 1, py-feat from 0).
FRAME_BASE: dict[str, int] = {"openface": 1, "pyfeat": 0}
#: The face column: OpenFace's ``success`` (1 = tracked), py-feat's ``FaceScore`` (blank = no face).
FACE_COLUMN: dict[str, str] = {"openface": "success", "pyfeat": "facescore"}
POSE_COLUMNS: tuple[str, ...] = ("pitch_deg", "yaw_deg", "roll_deg")
_DEG = 180.0 / math.pi
#: aupipe pose column -> (the tool's column, lower case; factor to aupipe's degrees). OpenFace's
#: ``pose_R*`` are radians about its camera axes (x right, y down, z away from the camera): pitch
#: keeps its sign, yaw and roll flip (checked against aupipe's own pose on real clips, r 0.7-0.97).
#: py-feat's ``Pitch`` / ``Yaw`` / ``Roll`` (degrees) are taken as py-feat gives them.
POSE_SOURCES: dict[str, dict[str, tuple[str, float]]] = {
    "openface": {"pitch_deg": ("pose_rx", _DEG), "yaw_deg": ("pose_ry", -_DEG), "roll_deg": ("pose_rz", -_DEG)},
    "pyfeat": {"pitch_deg": ("pitch", 1.0), "yaw_deg": ("yaw", 1.0), "roll_deg": ("roll", 1.0)},
}
CHUNK_ROWS = 4096


@dataclass(frozen=True)
class ImportSource:
    """What a file's header says: its kind, separator and which column gives what (original names).

    intensity / presence: AU name (``AU12``) -> column; ignored: AU columns aupipe does not
    report (``AU45_r``); frame / time (with ms per unit) / face / face_id / pose: the columns, or
    None when the file lacks them; fps: frames/s, used only without a time column; chosen_face:
    the OpenFace ``face_id`` kept.
    """

    path: Path
    kind: str
    sep: str
    header: tuple[str, ...]
    intensity: dict[str, str]
    presence: dict[str, str]
    ignored: tuple[str, ...] = ()
    frame: str | None = None
    time: tuple[str, float] | None = None
    face: str | None = None
    face_id: str | None = None
    chosen_face: int | None = None
    pose: dict[str, tuple[str, float]] = field(default_factory=dict)
    fps: float | None = None

    @property
    def name(self) -> str:
        """The tool's name (``OpenFace``, ``py-feat``)."""
        return NAMES[self.kind]

    def used_columns(self) -> set[str]:
        """Every column this source reads (original names)."""
        named = [self.frame, self.time[0] if self.time else None, self.face, self.face_id]
        return (
            {c for c in named if c}
            | set(self.intensity.values())
            | set(self.presence.values())
            | {column for column, _ in self.pose.values()}
        )

    def frame_columns(self) -> list[str]:
        """The frame-table columns an import of this file has, in order (docs/import.md)."""
        pose = list(POSE_COLUMNS) if self.pose else []
        return ["frame", "face_id", "time_ms", "face_found", *pose, *aus.au_columns(), *aus.presence_columns()]

    def missing_columns(self) -> list[str]:
        """Columns of a video's frame table (landmarks included) that an import of this file lacks."""
        have = set(self.frame_columns())
        return [c for c in frame_table_empty_cached(PipelineSettings()).columns if c not in have]

    def empty_columns(self) -> list[str]:
        """Columns an import has but leaves NaN throughout: AUs the tool does not give, and sided AUs."""
        given = set(self.intensity)
        empty = [f"{au}_r" for au in aus.AU_NAMES if au not in given] + aus.au_columns()[len(aus.AU_NAMES) :]
        return empty + [f"{au}_c" for au in aus.AU_NAMES if au not in given and au not in self.presence]

    def note(self) -> str:
        """One line: what an import of this file lacks and what that changes downstream (docs/import.md)."""
        lacking = [au for au in aus.AU_NAMES if au not in self.intensity]
        parts = [f"{self.path}: {self.name} table: {len(self.intensity)} of aupipe's {len(aus.AU_NAMES)} AUs"
                 + (f" (no {', '.join(lacking)} intensity: read as absent)" if lacking else "")]  # fmt: skip
        parts.append(
            "no one-sided AUs, landmarks, geometry, blendshapes, appearance or speaking: spotting reads AU "
            "intensities only" + (" and cannot mask blinks (no AU43)" if "AU43" in lacking else "")
            + ", one-sided rules never fire, ignore_when_speaking never applies"
        )  # fmt: skip
        if not self.pose:
            parts.append("no head pose (no head_turn_deg)")
        if self.ignored:
            parts.append(f"ignored {', '.join(self.ignored)}")
        return "; ".join(parts) + " (docs/import.md)"


def open_source(
    path: str | Path, kind: str = "openface", fps: float | None = None, face_id: int | None = None
) -> ImportSource:
    """Read the header of an OpenFace or py-feat CSV and decide what each column means.

    fps: the video's frame rate (frames/s), needed only when the file has no time column
    (``timestamp``, ``time_s`` or ``time_ms``): then time_ms = frame * 1000 / fps. face_id:
    the OpenFace face to keep when the file tracks several (default: the lowest; a warning says
    so). Raises InputError (one line) for a file that is no CSV, has no AU column of aupipe's,
    or looks like the other tool's table; SettingsError for an unknown kind or a bad fps.
    """
    if kind not in KINDS:
        raise SettingsError(f"unknown AU table kind {kind!r}; choose {' or '.join(KINDS)}")
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise SettingsError(f"fps must be a frame rate above 0 frames/s (got {fps})")
    path = Path(path)
    head = sniff(path, NAMES[kind])
    lower = {name.lower(): name for name in head.names}
    looks = detect_kind(set(lower))
    if kind == "pyfeat" and looks == "openface":
        raise InputError(f"{path}: this is an OpenFace table (success, confidence, AUxx_r); use aupipe import openface")
    if kind == "openface" and looks == "pyfeat" and not any(n.lower().endswith("_r") for n in head.names):
        raise InputError(f"{path}: this is a py-feat table (FaceScore, AU01 ...); use aupipe import pyfeat")
    intensity, ignored = au_column_map(path, list(head.names), kind)
    presence: dict[str, str] = {}
    for name in head.names:
        if match := PRESENCE_COLUMN.match(name):
            au = f"AU{int(match.group(1)):02d}"
            presence[au] = name if au in aus.AU_NAMES else presence.get(au, "")
            if au not in aus.AU_NAMES:
                ignored.append(name)
    presence = {au: presence[au] for au in aus.AU_NAMES if presence.get(au)}
    time = next(((lower[t], 1000.0 * s) for t, s in TIME_COLUMNS.items() if t in lower), None)
    frame = lower.get("frame")
    if time is None and fps is None:
        what = "frame times" if frame else "frame or time column"
        raise InputError(
            f"{path}: no {what} ({', '.join(TIME_COLUMNS)}); give the video's frame rate (fps, frames/s; --fps) "
            "to time its frames"
        )
    if time is None and frame is None:
        raise InputError(f"{path}: no frame column (frame) and no time column ({', '.join(TIME_COLUMNS)})")
    pose_spec = POSE_SOURCES[kind]
    pose = {ours: (lower[theirs], k) for ours, (theirs, k) in pose_spec.items() if theirs in lower}
    source = ImportSource(
        path, kind, head.sep, head.names, intensity, presence, tuple(ignored), frame, time,
        lower.get(FACE_COLUMN[kind]), lower.get("face_id") if kind == "openface" else None, None,
        pose if len(pose) == len(pose_spec) else {}, fps,
    )  # fmt: skip
    return _choose_face(source, face_id)


def _choose_face(source: ImportSource, face_id: int | None) -> ImportSource:
    """The OpenFace face to keep: ``face_id`` or the lowest one in the file (one pass over that column)."""
    if source.face_id is None:
        if face_id is not None:
            raise InputError(f"{source.path}: face_id {face_id} asked for, but the file has no face_id column")
        return source
    seen: set[int] = set()
    head = _head(source)
    for table in read_text(source.path, head, lambda c: c.strip() == source.face_id, CHUNK_ROWS * 16):
        ids = numbers(source.path, table, source.face_id)
        seen.update(int(i) for i in np.unique(ids[np.isfinite(ids)]))
    if not seen:
        raise InputError(f"{source.path}: no data rows (a header only)")
    chosen = min(seen) if face_id is None else face_id
    if chosen not in seen:
        raise InputError(
            f"{source.path}: no face_id {chosen}; the file has face_id {', '.join(map(str, sorted(seen)))}"
        )
    if len(seen) > 1:
        warnings.warn(f"{source.path}: {len(seen)} faces tracked; using face_id {chosen}", AupipeWarning, 3)
    return dataclasses.replace(source, chosen_face=chosen)


def _head(source: ImportSource) -> CsvHead:
    return CsvHead(source.sep, source.header)


def read_chunks(source: ImportSource, chunk_rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """Stream the file's rows as source rows (module doc), about ``chunk_rows`` at a time, checked.

    Rows must be in frame order: a frame number that does not increase, or a time that goes back,
    is an InputError naming its line; so are cells that are no number and values out of the
    tool's range (0-5 OpenFace, 0-1 py-feat; presence 0 or 1). py-feat's several faces in one
    frame keep the highest ``FaceScore`` (a warning says so).
    """
    wanted = source.used_columns()
    held: pd.DataFrame | None = None  # the last frame's rows: more faces of it may follow
    last = (-np.inf, -np.inf)  # (frame, time_ms) of the last row given out
    counter = 0  # frame numbers for a file without a frame column
    n_rows = 0
    warned = False
    for table in read_text(source.path, _head(source), lambda c: c.strip() in wanted, chunk_rows):
        if source.face_id is not None and len(table):
            table = table[numbers(source.path, table, source.face_id) == source.chosen_face]
        if not len(table):
            continue
        rows = _parse(source, table, counter)
        counter += len(rows)
        n_rows += len(rows)
        rows = pd.concat([held, rows], ignore_index=True) if held is not None else rows
        tail = rows["frame"].to_numpy() == rows["frame"].iloc[-1]
        held, rows = rows[tail], rows[~tail]
        rows, last, warned = _ordered(source, rows, last, warned)
        if len(rows):
            yield rows.drop(columns=["_line", "_score"])
    if held is not None:
        rows, last, warned = _ordered(source, held, last, warned)
        yield rows.drop(columns=["_line", "_score"])
    if n_rows == 0:
        raise InputError(f"{source.path}: no data rows (a header only)")


def _parse(source: ImportSource, table: pd.DataFrame, counter: int) -> pd.DataFrame:
    """Checked source rows of one chunk of text, plus ``_line`` (file line) and ``_score`` (face score)."""
    path, n = source.path, len(table)
    if source.frame is not None:
        raw = numbers(path, table, source.frame, required=True)
        bad = ~np.isfinite(raw) | (raw != np.round(raw))
        if bad.any():
            raise InputError(f"{path}: line {first_line(table, bad)}, column {source.frame}: frame "
                             f"{raw[bad][0]:g} is not a whole number")  # fmt: skip
        frames = raw - FRAME_BASE[source.kind]
        if (frames < 0).any():
            numbered = f"{source.name} numbers frames from {FRAME_BASE[source.kind]}"
            raise InputError(f"{path}: line {first_line(table, frames < 0)}: frame {raw.min():g} is before the first "
                             f"frame ({numbered})")  # fmt: skip
    else:
        frames = np.arange(counter, counter + n, dtype=np.float64)
    if source.time is not None:
        column, ms_per_unit = source.time
        seconds = numbers(path, table, column, required=True)
        bad = ~np.isfinite(seconds) | (seconds < 0)
        if bad.any():
            raise InputError(
                f"{path}: line {first_line(table, bad)}, column {column}: time must be a number, 0 or more"
            )
        time_ms = seconds * ms_per_unit
    else:
        time_ms = frames * 1000.0 / float(source.fps)  # type: ignore[arg-type]  # open_source made sure
    if source.face is None:
        score = np.ones(n)
    elif source.kind == "openface":
        score = np.where(numbers(path, table, source.face) == 1, 1.0, np.nan)
    else:
        score = numbers(path, table, source.face)
    values = {au: numbers(path, table, column) for au, column in source.intensity.items()}
    face = np.isfinite(score) if source.face is not None else ~np.isnan(np.column_stack(list(values.values()))).all(1)
    out: dict[str, np.ndarray] = {"frame": frames.astype(np.int64), "time_ms": time_ms, "face_found": face}
    for ours, (column, factor) in source.pose.items():
        out[ours] = np.where(face, numbers(path, table, column) * factor, np.nan)
    top, scale = TOPS[source.kind]
    for au, column in source.intensity.items():
        given = np.where(face, values[au], np.nan)
        check_range(path, table, column, given, top, scale)
        out[au] = given
    for au, column in source.presence.items():
        given = np.where(face, numbers(path, table, column), np.nan)
        bad = ~np.isnan(given) & (given != 0) & (given != 1)
        if bad.any():
            raise InputError(f"{path}: line {first_line(table, bad)}, column {column}: {given[bad][0]:g} is not 0 or 1 "
                             f"({source.name} presence)")  # fmt: skip
        out[f"{au}_c"] = given
    out["_line"] = table.index.to_numpy() + 2
    out["_score"] = np.nan_to_num(score, nan=-np.inf)
    return pd.DataFrame(out)


def _ordered(
    source: ImportSource, rows: pd.DataFrame, last: tuple[float, float], warned: bool
) -> tuple[pd.DataFrame, tuple[float, float], bool]:
    """One row per frame (py-feat: the best-scored face), checked to follow ``last`` (frame, time_ms)."""
    if not len(rows):
        return rows, last, warned
    frames = rows["frame"].to_numpy()
    if len(np.unique(frames)) < len(frames):
        if source.kind == "pyfeat":
            if not warned:
                warnings.warn(f"{source.path}: several faces in some frames; using the highest FaceScore",
                              AupipeWarning, 4)  # fmt: skip
                warned = True
            order = np.lexsort((-rows["_score"].to_numpy(), frames))
            first = np.r_[True, frames[order][1:] != frames[order][:-1]]
            rows = rows.iloc[np.sort(order[first])].reset_index(drop=True)
            frames = rows["frame"].to_numpy()
        else:
            twice = pd.Series(frames).duplicated(keep=False).to_numpy()
            lines = rows["_line"].to_numpy()[twice][:2]
            raise InputError(f"{source.path}: frame {frames[twice][0] + FRAME_BASE[source.kind]} appears twice, on "
                             f"lines {lines[0]} and {lines[1]}")  # fmt: skip
    times = rows["time_ms"].to_numpy()
    previous_frame = np.r_[last[0], frames[:-1]]
    previous_time = np.r_[last[1], times[:-1]]
    bad = (frames <= previous_frame) | (times < previous_time)
    if bad.any():
        i = int(np.argmax(bad))
        line = int(rows["_line"].iloc[i])
        what = "frame" if frames[i] <= previous_frame[i] else "time"
        raise InputError(f"{source.path}: line {line}: the {what} goes back (frame {frames[i] + FRAME_BASE[source.kind]}"
                         f" after frame {previous_frame[i] + FRAME_BASE[source.kind]:g}); rows must be in frame order")  # fmt: skip
    return rows, (float(frames[-1]), float(times[-1])), warned


def frame_rows(rows: pd.DataFrame, scale: float = 1.0, presence_threshold: float = 1.0) -> pd.DataFrame:
    """Source rows (module doc) -> frame-table rows: ``frame``, ``time_ms``, ``face_found``, pose (when
    given), ``AUxx_r`` = the tool's value * ``scale`` (0-5; NaN for AUs it lacks), the sided
    ``AUxx_left_r`` / ``AUxx_right_r`` (NaN: no tool here gives sides) and ``AUxx_c``: the tool's
    presence where given, else 1.0 where ``AUxx_r`` >= ``presence_threshold`` (NaN without a value)."""
    n = len(rows)
    out: dict[str, np.ndarray] = {
        "frame": rows["frame"].to_numpy(dtype=np.int64), "time_ms": rows["time_ms"].to_numpy(dtype=np.float64),
        "face_found": rows["face_found"].to_numpy(dtype=bool),
    }  # fmt: skip
    for column in POSE_COLUMNS:
        if column in rows:
            out[column] = rows[column].to_numpy(dtype=np.float64)
    blank = np.full(n, np.nan)
    for column in aus.au_columns():
        au = column[:4]
        given = column == f"{au}_r" and au in rows
        out[column] = np.clip(rows[au].to_numpy(dtype=np.float64) * scale, 0.0, 5.0) if given else blank.copy()
    for au in aus.AU_NAMES:
        value = out[f"{au}_r"]
        rule = np.where(np.isnan(value), np.nan, (value >= presence_threshold).astype(float))
        out[f"{au}_c"] = rows[f"{au}_c"].to_numpy(dtype=np.float64) if f"{au}_c" in rows else rule
    return pd.DataFrame(out)


@dataclass(frozen=True)
class ImportedAuStage:
    """Another tool's per-frame AUs (source rows, ``read_chunks``) -> frame-table rows (``frame_rows``);
    no state, nothing held back, no baseline and no filter: the tool's values as it gave them."""

    scale: float = 1.0  # tool's unit -> aupipe's 0-5 (py-feat: 5.0)
    presence_threshold: float = 1.0  # AUxx_c where the tool gives none: AUxx_r >= this (aupipe's rule)
    name: str = "imported_aus"

    def start(self) -> None:
        return None

    def step(self, state: None, rows: pd.DataFrame | None, final: bool) -> tuple[pd.DataFrame, None]:
        if rows is None or not len(rows):
            return pd.DataFrame(), None
        return frame_rows(rows, self.scale, self.presence_threshold), None


def imported_chain(settings: PipelineSettings, emotion_map: mapping.Mapping, kind: str = "openface") -> Chain:
    """``build_chain`` with the imported table's frame stages (``ImportedAuStage``, column order)."""
    stage = ImportedAuStage(SCALES[kind], settings.aus.presence_threshold)
    return build_chain(settings, emotion_map, frame_stages=(stage, ColumnOrderStage(settings)))


def frames_chain(settings: PipelineSettings, emotion_map: mapping.Mapping) -> Chain:
    """``build_chain`` for frame rows already in the frame table's layout (only the column order stage)."""
    return build_chain(settings, emotion_map, frame_stages=(ColumnOrderStage(settings),))


def _through(
    raws: Iterator[pd.DataFrame], chain: Chain, emotion_map: mapping.Mapping, settings: PipelineSettings
) -> Iterator[tuple[Chunk, StreamState]]:
    state = StreamState()
    for raw in raws:
        chunk, state = advance(state, raw, emotion_map, settings, chain=chain)
        yield chunk, state
    yield advance(state, None, emotion_map, settings, final=True, chain=chain)


def stream_imported(
    source: ImportSource, emotion_map: mapping.Mapping, settings: PipelineSettings = PipelineSettings(),
    chunk_rows: int = CHUNK_ROWS, chain: Chain | None = None,
) -> Iterator[tuple[Chunk, StreamState]]:  # fmt: skip
    """``chain.stream`` for an imported table: each chunk's frame rows, windows and events, with the
    state after it; the last item flushes every stage."""
    chain = chain or imported_chain(settings, emotion_map, source.kind)
    return _through(read_chunks(source, chunk_rows), chain, emotion_map, settings)


def stream_table(
    frames: pd.DataFrame, emotion_map: mapping.Mapping, settings: PipelineSettings = PipelineSettings(),
    chunk_rows: int = CHUNK_ROWS, chain: Chain | None = None,
) -> Iterator[tuple[Chunk, StreamState]]:  # fmt: skip
    """The same for a frame table in memory (``frame``, ``time_ms``, ``face_found``, ``AUxx_r`` ...,
    in time order), fed ``chunk_rows`` rows at a time."""
    for column in ("frame", "time_ms", "face_found"):
        if column not in frames.columns:
            raise InputError(
                f"frame table: no {column} column (a frame table needs frame, time_ms, face_found, AUxx_r)"
            )
    if not any(c in frames.columns for c in aus.au_columns()):
        raise InputError("frame table: no AU intensity column (AU01_r, AU02_r ...)")
    times = frames["time_ms"].to_numpy(dtype=np.float64)
    if len(times) and (not np.isfinite(times).all() or (np.diff(times) < 0).any()):
        raise InputError("frame table: time_ms must be finite and in time order")
    chain = chain or frames_chain(settings, emotion_map)
    pieces = (frames.iloc[i : i + chunk_rows].reset_index(drop=True) for i in range(0, len(frames), chunk_rows))
    return _through(pieces, chain, emotion_map, settings)
