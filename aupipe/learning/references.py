"""Reference AU codes for ``aupipe calibrate``: read, check and pair a lab's own AU codes.

Three CSV formats (a FACS coder's codes, OpenFace 2.x FeatureExtraction output, a py-feat ``Fex``
saved with ``to_csv``) become one standard table: one row per coded frame, sorted, ``frame`` (int,
0-based video frame index), ``valid`` (bool) and one float column per AU aupipe reports (``AU01`` ...
as ``aus.AU_NAMES``) on aupipe's 0-5 scale (0 absent, 1 = FACS A ... 5 = FACS E; NaN = not coded).
Every problem with a file is one ``InputError`` line naming the file. Formats: docs/aus.md.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from aupipe.chain.au_csv import (  # the parsing shared with ``aupipe import`` (aupipe.chain.imported)
    AU_COLUMN, FACS_LETTERS, PYFEAT_MARKERS, TIME_COLUMNS, au_column_map, check_range, detect_kind, first_line,
    numbers, read_text, sniff,
)  # fmt: skip
from aupipe.errors import AupipeWarning, InputError

__all__ = [
    "FACS_LETTERS", "KINDS", "LENGTH_TOLERANCE_FRACTION", "LENGTH_TOLERANCE_FRAMES", "PYFEAT_MARKERS", "TIME_COLUMNS",
    "align", "pair_references", "read_reference",
]  # fmt: skip

KINDS: tuple[str, ...] = ("auto", "facs", "openface", "pyfeat")
#: A reference may end or run past its video's frame count by this much: max(frames, fraction * count).
LENGTH_TOLERANCE_FRAMES = 2
LENGTH_TOLERANCE_FRACTION = 0.02
_NEEDED = {"frame", "face_id", "success", "facescore", *TIME_COLUMNS}


def read_reference(
    path: str | Path,
    kind: str = "auto",
    n_frames: int | None = None,
    fps: float | None = None,
    *,
    frame_base: int | None = None,
    face_id: int | None = None,
    blank_absent: bool = False,
) -> pd.DataFrame:
    """Read one reference CSV into the standard table (columns ``frame``, ``valid``, ``AU01`` ...).

    kind: "auto" (OpenFace if it has ``success``, ``confidence`` and ``AUxx_r``; py-feat if it has
        ``FaceRectX``, ``FaceScore`` or ``input``; else FACS codes), "facs", "openface" or "pyfeat".
    n_frames: the video's frame count; the reference must cover it to within the tolerance
        ``max(2 frames, 2 %)``. None or 0 (count unknown) skips the check.
    fps: the video's frame rate (frames/s), needed only for time-based codes:
        frame = round(time_s * fps), time 0 = the first frame.
    frame_base: 0 or 1, how ``frame`` is numbered. Default: OpenFace 1, py-feat 0; FACS codes
        0-based if frame 0 appears, else 1-based (with a warning when the first frame is above 1).
    face_id: OpenFace face to keep when the file tracks several (default: the lowest face_id).
        py-feat files with several faces in a frame keep the face with the highest FaceScore.
    blank_absent: FACS codes only: read blank cells as 0 (absent) instead of NaN (not coded).

    AU columns aupipe does not report (e.g. AU45) are ignored with an ``AupipeWarning`` and listed
    in ``table.attrs["ignored_aus"]``. Raises InputError (one line, naming the file) for any bad file.
    """
    path = Path(path)
    if kind not in KINDS:
        raise InputError(f"{path}: unknown reference kind {kind!r} (choose from {', '.join(KINDS)})")
    if frame_base not in (None, 0, 1):
        raise InputError(f"{path}: frame_base must be 0 or 1, not {frame_base!r}")
    table = _read_csv(path)
    lower = {column.lower(): column for column in table.columns}
    if kind == "auto":
        kind = detect_kind({name.lower() for name in table.attrs["header"]})
    au_map, ignored = au_column_map(path, list(table.columns), kind)
    frames = _frames(path, table, lower, kind, fps, frame_base)

    if kind == "openface" and "face_id" in lower:
        ids = numbers(path, table, lower["face_id"])
        present = sorted({int(i) for i in ids[~np.isnan(ids)]})
        chosen = min(present) if face_id is None and present else face_id
        if chosen not in present:
            raise InputError(f"{path}: no face_id {chosen}; the file has face_id {', '.join(map(str, present))}")
        if len(present) > 1:
            warnings.warn(f"{path}: {len(present)} faces tracked; using face_id {chosen}", AupipeWarning, 2)
        keep = ids == chosen
        table, frames = table[keep], frames[keep]
    if kind == "pyfeat" and "facescore" in lower and len(np.unique(frames)) < len(frames):
        score = np.nan_to_num(numbers(path, table, lower["facescore"]), nan=-np.inf)
        order = np.lexsort((-score, frames))
        first = np.r_[True, frames[order][1:] != frames[order][:-1]]
        keep_rows = np.sort(order[first])
        warnings.warn(f"{path}: several faces in some frames; using the highest FaceScore", AupipeWarning, 2)
        table, frames = table.iloc[keep_rows], frames[keep_rows]
    _check_unique(path, table, frames)

    values = {au: numbers(path, table, column, letters=kind == "facs") for au, column in au_map.items()}
    if kind == "facs" and blank_absent:
        values = {au: np.nan_to_num(v, nan=0.0) for au, v in values.items()}
    coded = np.column_stack(list(values.values()))
    valid = ~np.isnan(coded).all(axis=1)
    if kind == "openface" and "success" in lower:
        valid &= numbers(path, table, lower["success"]) == 1
    if kind == "pyfeat" and "facescore" in lower:
        valid &= ~np.isnan(numbers(path, table, lower["facescore"]))
    scale = 5.0 if kind == "pyfeat" else 1.0
    out = pd.DataFrame({"frame": frames.astype(np.int64), "valid": valid})
    for au, column in au_map.items():
        column_values = np.where(valid, values[au], np.nan)
        check_range(path, table, column, column_values, 1.0 if kind == "pyfeat" else 5.0)
        out[au] = column_values * scale
    _check_length(path, frames, n_frames)
    out = out.sort_values("frame", kind="stable").reset_index(drop=True)
    if ignored:
        warnings.warn(f"{path}: ignored AU columns aupipe does not report: {', '.join(ignored)}", AupipeWarning, 2)
    out.attrs.update(source=str(path), kind=kind, ignored_aus=ignored)
    return out


def pair_references(videos: Sequence[str | Path], reference: str | Path) -> list[tuple[Path, Path]]:
    """Pair each video with its reference CSV: (video, reference) in the order of ``videos``.

    ``reference`` is a folder holding one ``.csv`` per video, matched by file stem (``clip1.mp4`` <->
    ``clip1.csv``), or one CSV file when there is one video. A video without a reference file is an
    InputError naming it; reference files that match no video are reported with an AupipeWarning.
    """
    video_paths = [Path(v) for v in videos]
    reference = Path(reference)
    if not video_paths:
        raise InputError(f"{reference}: no videos to pair with reference codes")
    if not reference.exists():
        raise InputError(f"{reference}: no such reference file or folder")
    if reference.is_file():
        if len(video_paths) > 1:
            raise InputError(
                f"{reference}: one reference file for {len(video_paths)} videos; give a folder with one CSV per "
                "video, named like the video (clip1.mp4 <-> clip1.csv)"
            )
        return [(video_paths[0], reference)]
    by_stem: dict[str, Path] = {}
    for file in sorted(reference.iterdir()):
        if file.is_file() and file.suffix.lower() == ".csv":
            if file.stem in by_stem:
                raise InputError(
                    f"{reference}: two reference files for {file.stem}: {by_stem[file.stem].name}, {file.name}"
                )
            by_stem[file.stem] = file
    stems: dict[str, Path] = {}
    for video in video_paths:
        if video.stem in stems:
            raise InputError(f"{video}: same name as {stems[video.stem]}; references are matched by file stem")
        stems[video.stem] = video
    missing = [str(v) for v in video_paths if v.stem not in by_stem]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise InputError(f"{reference}: no reference CSV (same stem + .csv) for video {shown}")
    unused = sorted(file.name for stem, file in by_stem.items() if stem not in stems)
    if unused:
        warnings.warn(f"{reference}: reference files matching no video: {', '.join(unused)}", AupipeWarning, 2)
    return [(video, by_stem[video.stem]) for video in video_paths]


def align(reference_table: pd.DataFrame, frame_index: np.ndarray | Sequence[int]) -> pd.DataFrame:
    """The reference table reindexed to ``frame_index`` ((n,) 0-based video frame numbers).

    One row per requested frame, in that order, same columns; frames the reference does not code
    get NaN AUs and ``valid`` False.
    """
    frames = np.asarray(frame_index)
    if frames.ndim != 1:
        raise ValueError(f"frame_index must be one-dimensional, got shape {frames.shape}")
    if frames.size and (not np.all(np.isfinite(frames)) or not np.all(frames == np.round(frames))):
        raise ValueError("frame_index must hold whole frame numbers")
    table = reference_table.set_index("frame")
    if not table.index.is_unique:
        raise ValueError("reference table has duplicate frames")
    frames = frames.astype(np.int64)
    out = table.drop(columns="valid").reindex(frames).reset_index()
    out.insert(1, "valid", table["valid"].reindex(frames, fill_value=False).to_numpy(dtype=bool))
    out.attrs.update(reference_table.attrs)
    return out


def _read_csv(path: Path) -> pd.DataFrame:
    """The columns a reference needs, as text (blank = NaN), names stripped, empty rows dropped;
    index = data row (0-based); ``attrs["header"]`` = every column name of the file."""
    if not path.exists():
        raise InputError(f"{path}: no such reference file")
    head = sniff(path)
    table = next(read_text(path, head, _needed))
    if len(table.columns) and table.empty:  # no column it needs: reported by the caller
        raise InputError(f"{path}: no data rows (a header only)")
    table.attrs["header"] = list(head.names)
    return table


def _needed(column: str) -> bool:
    """Whether a column is read at all (OpenFace and py-feat files have hundreds of others)."""
    name = str(column).strip()
    return name.lower() in _NEEDED or AU_COLUMN.match(name) is not None


def _frames(
    path: Path, table: pd.DataFrame, lower: dict[str, str], kind: str, fps: float | None, frame_base: int | None
) -> np.ndarray:
    """0-based video frame index of each row (int64), from ``frame`` or from a time column and ``fps``."""
    if "frame" in lower:
        column = lower["frame"]
        raw = numbers(path, table, column, required=True)
        fractional = ~np.isfinite(raw) | (raw != np.round(raw))
        if fractional.any():
            line = first_line(table, fractional)
            raise InputError(f"{path}: line {line}, column {column}: frame {raw[fractional][0]} is not a whole number")
        base = frame_base if frame_base is not None else {"openface": 1, "pyfeat": 0}.get(kind)
        if base is None:
            base = 0 if (raw == 0).any() else 1
            if raw.min() > 1:
                warnings.warn(
                    f"{path}: frames start at {raw.min():.0f}; read as numbered from 1 (frame_base=0 if from 0)",
                    AupipeWarning, 2,
                )  # fmt: skip
        frames = raw - base
        if frames.min() < 0:
            line = first_line(table, frames < 0)
            numbered = "OpenFace numbers frames from 1" if kind == "openface" else f"frames numbered from {base}"
            raise InputError(f"{path}: line {line}: frame {raw.min():.0f} is before the first frame ({numbered})")
        return frames.astype(np.int64)
    for name, seconds_per_unit in TIME_COLUMNS.items():
        if name in lower:
            column = lower[name]
            if fps is None or not math.isfinite(fps) or fps <= 0:
                given = "" if fps is None else f" (got fps={fps})"
                raise InputError(
                    f"{path}: codes are timed by column {column}, not numbered by frame; the video's frame rate "
                    f"(fps, frames/s) is needed to turn them into frames{given}"
                )
            raw = numbers(path, table, column, required=True)
            if ((raw < 0) | ~np.isfinite(raw)).any():
                line = first_line(table, (raw < 0) | ~np.isfinite(raw))
                raise InputError(f"{path}: line {line}, column {column}: time must be a number, 0 or more")
            return np.rint(raw * seconds_per_unit * fps).astype(np.int64)
    header = table.attrs["header"]
    raise InputError(
        f"{path}: no frame column ('frame') or time column ({', '.join(TIME_COLUMNS)}); "
        f"columns are {', '.join(header[:8])}{' ...' if len(header) > 8 else ''}"
    )


def _check_unique(path: Path, table: pd.DataFrame, frames: np.ndarray) -> None:
    repeated = pd.Series(frames).duplicated(keep=False).to_numpy()
    if repeated.any():
        frame = frames[repeated][0]
        lines = [int(row) + 2 for row in table.index[frames == frame][:2]]
        raise InputError(f"{path}: video frame {frame} (0-based) is coded twice, on lines {lines[0]} and {lines[1]}")


def _check_length(path: Path, frames: np.ndarray, n_frames: int | None) -> None:
    if not n_frames:
        return
    covered = int(frames.max()) + 1
    tolerance = max(LENGTH_TOLERANCE_FRAMES, math.ceil(LENGTH_TOLERANCE_FRACTION * n_frames))
    if abs(covered - n_frames) > tolerance:
        how = "runs past" if covered > n_frames else "ends well before the end of"
        raise InputError(
            f"{path}: the reference {how} its video: it ends at frame {covered} (counting from 1), the video has "
            f"{n_frames} frames (tolerance {tolerance}); wrong file, frame rate or frame numbering?"
        )
