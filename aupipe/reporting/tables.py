"""The tables a report is built from (docs/report.md): found in a folder or named one by one, read,
checked against the video and against each other, and cut to the columns the report shows.

Every float is taken *as written*: rounded to 6 significant digits (``%.6g``, the CSV writer's
format), so a report built in the same pass as ``aupipe run`` and one built later from its
files show the same page.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from aupipe.errors import InputError
from aupipe.signal.facs import AU_NAMES, SIDED_AUS
from aupipe.signal.video import VideoInfo

__all__ = [
    "KINDS", "REGION_LANDMARKS", "ReportTables", "as_written", "check_tables", "duration_ms", "find_tables",
    "frame_columns", "prepare", "read_tables", "window_columns",
]  # fmt: skip

#: The table kinds, in the order they are looked for; only ``windows`` is required.
KINDS: tuple[str, ...] = ("windows", "frames", "events", "summary", "baseline")
#: Columns that tell a table's kind from its header.
SIGNATURES: dict[str, frozenset[str]] = {
    "windows": frozenset({"window", "start_ms", "end_ms", "emotion"}),
    "frames": frozenset({"frame", "time_ms", "face_found"}),
    "events": frozenset({"event", "onset_ms", "offset_ms", "kind"}),
    "summary": frozenset({"segment", "core_emotion", "n_windows"}),
    "baseline": frozenset({"signal", "kind", "value"}),
}
TABLE_SUFFIXES = (".csv", ".parquet", ".pq")
#: Landmarks whose image positions (``x_i``, ``y_i`` of the frame table) mark the AU regions on stills.
REGION_LANDMARKS: tuple[int, ...] = (
    0, 13, 14, 17, 18, 37, 39, 46, 50, 55, 61, 64, 66, 70, 98, 101, 105, 107, 118, 129, 144, 145, 152, 153, 158,
    159, 160, 175, 200, 267, 269, 276, 280, 285, 291, 294, 296, 300, 327, 330, 334, 336, 347, 358, 373, 374, 380,
    385, 386, 387,
)  # fmt: skip
_FRAME_BASE = (
    "frame", "face_id", "time_ms", "face_found", "box_x_px", "box_y_px", "box_w_px", "box_h_px", "face_width_px", "pitch_deg",
    "yaw_deg", "roll_deg", "speaking",
)  # fmt: skip
_WINDOW_BASE = (
    "window", "face_id", "start_ms", "end_ms", "start_frame", "end_frame", "n_frames", "face_coverage", "speaking",
    "head_turn_deg", "baseline_confidence", "emotion", "core_emotion", "emotion_score", "emotion_confidence",
    "emotion_aus", "in_event",
)  # fmt: skip
_TEXT = ("emotion", "core_emotion", "emotion_aus", "kind", "aus", "peaks", "segment", "second_core_emotion", "signal",
         "source", "event_emotions", "event_kinds")  # fmt: skip
_BOOL = ("face_found", "in_event", "within_macro")


@dataclass(frozen=True)
class ReportTables:
    """What a report shows, as DataFrames in the layout of aupipe's tables (docs/outputs.md).

    windows: the window table (required; its AU peaks, labels and ``score_`` columns); events: the
    events table (may be empty); frames: the frame table's report columns (``frame_columns``):
    face boxes for the stills, per-frame AUs for the heat map (None: whole frames as stills and
    the heat map from window peaks); summary: the clip summary (None: computed from the windows);
    baseline: the baseline table (None: the overview says the baseline is unknown).
    """

    windows: pd.DataFrame
    events: pd.DataFrame
    frames: pd.DataFrame | None = None
    summary: pd.DataFrame | None = None
    baseline: pd.DataFrame | None = None


def one_face(tables: ReportTables, face_id: int | None = None) -> tuple[ReportTables, int | None, int]:
    """The rows of one face of every table (tables with ``face_id``, docs/faces.md): ``face_id``,
    or the lowest one (None). Returns the tables, the face shown (None: the tables have no
    ``face_id``) and how many faces the tables hold. An unknown ``face_id`` raises InputError."""
    if "face_id" not in tables.windows.columns:
        return tables, None, 1
    ids = sorted({int(i) for i in tables.windows["face_id"].unique()}) or [0]
    chosen = ids[0] if face_id is None else int(face_id)
    if chosen not in ids:
        raise InputError(f"no face {chosen} in these tables; their faces are {ids}")

    def rows(table: pd.DataFrame | None) -> pd.DataFrame | None:
        if table is None or "face_id" not in table.columns:
            return table
        return table.loc[table["face_id"].to_numpy() == chosen].reset_index(drop=True)

    picked = ReportTables(rows(tables.windows), rows(tables.events), rows(tables.frames), rows(tables.summary),
                          rows(tables.baseline))  # type: ignore[arg-type]  # fmt: skip
    return picked, chosen, len(ids)


def frame_columns(columns: Iterable[str]) -> list[str]:
    """The frame-table columns a report keeps, of ``columns``: ids, box (px), pose (deg), ``AUxx_r``
    (0-5) and the image positions (px) of ``REGION_LANDMARKS`` when the table has landmarks."""
    have = set(columns)
    wanted = [*_FRAME_BASE, *(f"{au}_r" for au in AU_NAMES)]
    wanted += [f"{axis}_{i}" for i in REGION_LANDMARKS for axis in ("x", "y")]
    return [c for c in wanted if c in have]


def window_columns(columns: Iterable[str]) -> list[str]:
    """The window-table columns a report keeps: ids, face evidence, AU peaks (0-5, sided too),
    scores and labels."""
    names = list(columns)
    have = set(names)
    peaks = [f"{au}_peak" for au in AU_NAMES] + [f"{au}_{s}_peak" for au in SIDED_AUS for s in ("left", "right")]
    scores = [c for c in names if c.startswith("score_")]
    return [c for c in (*_WINDOW_BASE, *peaks, *scores) if c in have]


def as_written(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with every float column rounded to 6 significant digits exactly as the CSV writer
    prints it (``%.6g``), booleans as bool and text without NaN (empty text is "")."""
    out = {}
    for name in table.columns:
        column = table[name]
        if name in _BOOL:
            out[name] = column.fillna(False).astype(bool).to_numpy()
        elif name in _TEXT or column.dtype == object or isinstance(column.dtype, pd.StringDtype):
            out[name] = column.astype(object).where(column.notna(), "").astype(str).to_numpy()
        elif pd.api.types.is_float_dtype(column.dtype):
            values = column.to_numpy(dtype=np.float64)
            out[name] = np.char.mod("%.6g", values).astype(np.float64) if len(values) else values
        else:
            out[name] = column.to_numpy()
    return pd.DataFrame(out, index=pd.RangeIndex(len(table)))


def prepare(
    windows: pd.DataFrame,
    events: pd.DataFrame | None = None,
    frames: pd.DataFrame | None = None,
    summary: pd.DataFrame | None = None,
    baseline: pd.DataFrame | None = None,
) -> ReportTables:
    """The report's tables from full tables (in memory or read back): the kept columns, as written."""
    if not {"start_ms", "end_ms", "emotion"} <= set(windows.columns):
        raise InputError("the window table lacks start_ms, end_ms or emotion; give aupipe's window table")
    kept_frames = as_written(frames[frame_columns(frames.columns)]) if frames is not None else None
    return ReportTables(
        windows=as_written(windows[window_columns(windows.columns)]),
        events=as_written(events) if events is not None else pd.DataFrame(columns=["event", "onset_ms", "offset_ms"]),
        frames=kept_frames,
        summary=as_written(summary) if summary is not None else None,
        baseline=as_written(baseline) if baseline is not None else None,
    )


def _header(path: Path) -> list[str]:
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        return list(pd.read_csv(path, nrows=0).columns)
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not a readable table ({type(err).__name__})") from None
    except Exception as err:  # noqa: BLE001 - pyarrow's and pandas' parser errors: one line for the user
        raise InputError(f"{path}: not a readable table ({str(err).splitlines()[0] if str(err) else err})") from None


def kind_of(path: Path) -> str:
    """Which of aupipe's tables ``path`` holds, from its header; InputError for any other file."""
    columns = set(_header(path))
    for kind in KINDS:
        if SIGNATURES[kind] <= columns:
            return kind
    raise InputError(f"{path}: not one of aupipe's tables ({', '.join(KINDS)}); its columns say neither")


def find_tables(video: str | Path, sources: Sequence[str | Path]) -> dict[str, Path]:
    """The tables named by ``sources``: folders (holding ``<video stem>.windows.csv``, ``.frames``,
    ``.events``, ``.summary``, ``.baseline``, as CSV or Parquet) and table files (their kind read
    from their header). A later source replaces an earlier one's table of the same kind; two files
    of one kind given as files are refused. InputError when no window table is found."""
    stem = Path(video).stem
    found: dict[str, Path] = {}
    named: dict[str, Path] = {}
    for source in sources:
        path = Path(source)
        if path.is_dir():
            for kind in KINDS:
                for suffix in TABLE_SUFFIXES:
                    candidate = path / f"{stem}.{kind}{suffix}"
                    if candidate.is_file():
                        found[kind] = candidate
                        break
        elif path.is_file():
            kind = kind_of(path)
            if kind in named:
                raise InputError(f"{path}: a second {kind} table (the first is {named[kind]}); give one of each")
            named[kind] = found[kind] = path
        else:
            raise InputError(f"{path}: no such table or folder")
    if "windows" not in found:
        folders = [str(s) for s in sources if Path(s).is_dir()]
        where = f" in {', '.join(folders)} (looked for {stem}.windows.csv / .parquet)" if folders else ""
        raise InputError(f"no window table{where}; write it with aupipe run {video} -o ... or name it")
    return found


def _read(path: Path) -> pd.DataFrame:
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path, low_memory=False)
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot read the table ({str(err).splitlines()[0] if str(err) else err})") from None


def read_tables(paths: dict[str, Path]) -> ReportTables:
    """Read the tables ``find_tables`` found, keeping the report's columns (``prepare``)."""
    frames = None
    if "frames" in paths:
        keep = frame_columns(_header(paths["frames"]))
        if paths["frames"].suffix.lower() in (".parquet", ".pq"):
            frames = pd.read_parquet(paths["frames"], columns=keep)
        else:
            frames = pd.read_csv(paths["frames"], usecols=keep, low_memory=False)[keep]
    tables = {kind: _read(path) for kind, path in paths.items() if kind != "frames"}
    return prepare(tables["windows"], tables.get("events"), frames, tables.get("summary"), tables.get("baseline"))


def duration_ms(info: VideoInfo) -> float:
    """The video's length from its header (frames / fps, ms); 0 when the container declares none."""
    fps = info.fps if info.fps > 0 else 30.0
    return info.frame_count * 1000.0 / fps


def check_tables(tables: ReportTables, info: VideoInfo, partial: bool = False) -> None:
    """Refuse (InputError) tables that cannot be this video's: longer than the video, tables of
    different lengths, or, unless ``partial`` (an interrupted run), much shorter than the video."""
    windows, frames, events = tables.windows, tables.frames, tables.events
    step_ms = 1000.0 / (info.fps if info.fps > 0 else 30.0)
    length = duration_ms(info)
    end = float(windows["end_ms"].max()) if len(windows) else 0.0
    slack = 2 * step_ms + 1.0
    if frames is not None and len(frames):
        last = int(frames["frame"].max())
        if info.frame_count > 0 and last >= info.frame_count + 2:
            raise InputError(
                f"the frame table reaches frame {last} but {info.path} has {info.frame_count} frames: "
                "the tables are of another video"
            )
        frames_end = float(frames["time_ms"].max()) + step_ms
        if abs(frames_end - end) > max(2 * slack, float((windows["end_ms"] - windows["start_ms"]).max()) + slack):
            raise InputError(
                f"the frame table ends at {frames_end / 1000:.2f} s but the window table at {end / 1000:.2f} s: "
                "they come from different runs"
            )
    if len(events) and "offset_ms" in events and float(events["offset_ms"].max()) > end + slack:
        raise InputError(
            f"the events table reaches {float(events['offset_ms'].max()) / 1000:.2f} s, past the window table's "
            f"end ({end / 1000:.2f} s): they come from different runs"
        )
    if length > 0 and end > length + slack:
        raise InputError(
            f"the window table runs to {end / 1000:.2f} s but {info.path} lasts {length / 1000:.2f} s: "
            "the tables are of another video"
        )
    if length > 0 and not partial and end < 0.9 * length - slack:
        raise InputError(
            f"the window table covers {end / 1000:.2f} s of the {length / 1000:.2f} s of {info.path}: the tables "
            "are of another video (or of an interrupted run: then pass --partial)"
        )
