"""Several faces: the tracker's ``face_id``, then the one chain stepped once per face.

Every face has its own states of every stage (neutral baseline, AU filters, windows, spotting),
all made by the same ``Chain`` (``stages.build_chain``): nothing is wired twice. A face's rows
start at its first sighting (face 0's at the video's first frame) and continue to the video's
end, with ``face_found`` False while it is away, so its windows tile time like a one-face run's.
With one face (``num_faces`` 1) every row is face 0 and the tables are those of a one-face run
with a ``face_id`` column of zeros.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from collections.abc import Mapping as MappingOf
from typing import Any

import numpy as np
import pandas as pd

from aupipe.chain.settings import PipelineSettings
from aupipe.chain.stages import Chain
from aupipe.errors import AupipeWarning
from aupipe.signal import tracking

__all__ = ["FACE_ID", "insert_face_id", "step_faces", "track"]

FACE_ID = "face_id"  # OpenFace's column name
_NARROW = 400  # tables up to this many columns (all but frame tables with landmarks) take an insert


def insert_face_id(table: pd.DataFrame, face_id: int | np.ndarray, after: str | None = None) -> pd.DataFrame:
    """``table`` with a ``face_id`` column (int64) after column ``after`` (first when absent/None)."""
    out = table.drop(columns=[FACE_ID]) if FACE_ID in table.columns else table
    position = int(out.columns.get_loc(after)) + 1 if after is not None and after in out.columns else 0
    ids = np.broadcast_to(np.asarray(face_id, dtype=np.int64), (len(out),)).copy()
    if out.shape[1] <= _NARROW:  # a shallow copy and one insert: cheap, and a narrow table has few blocks
        out = out.copy(deep=False)
        out.insert(position, FACE_ID, ids)
        return out
    column = pd.DataFrame({FACE_ID: ids}, index=out.index)
    return pd.concat([out.iloc[:, :position], column, out.iloc[:, position:]], axis=1)  # wide (landmarks): no insert


def track(
    state: tracking.TrackState, raw: pd.DataFrame | None, settings: PipelineSettings, final: bool = False
) -> tuple[pd.DataFrame | None, tracking.TrackState]:
    """Raw frame rows with ``face_id``: the tracker's with several faces, 0 with one; rows that
    already have one (an imported multi-face table) keep it. With ``final`` an unsure tracker
    says so in one warning line."""
    if raw is not None:
        if settings.several_faces and tracking.TRACK_INPUT_COLUMNS[0] in raw.columns:
            raw, state = tracking.step(state, raw, settings.tracking)
        elif FACE_ID not in raw.columns:
            raw = insert_face_id(raw, 0, after="frame")
    if final and (message := tracking.unsure_message(state)) is not None:
        warnings.warn(message, AupipeWarning, 2)
        state = replace(state, n_unsure=0, unsure_frames=())  # said once
    return raw, state


def _blank(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per frame of ``rows`` with no face: frame and time kept, everything else empty."""
    first = rows.drop_duplicates("frame")
    n = len(first)
    data = {
        c: np.full(n, np.nan, dtype=first[c].dtype if first[c].dtype.kind == "f" else np.float64) for c in first.columns
    }
    data["frame"] = first["frame"].to_numpy()
    data["time_ms"] = first["time_ms"].to_numpy()
    data["face_found"] = np.zeros(n, dtype=bool)
    data[FACE_ID] = np.full(n, -1, dtype=np.int64)
    return pd.DataFrame(data, index=first.index)


def _face_rows(tracked: pd.DataFrame, blank: pd.DataFrame, face_id: int, from_frame: int | None) -> pd.DataFrame:
    """Face ``face_id``'s rows of a chunk, and empty rows for the frames (from ``from_frame`` on,
    None = every frame) where it was not found; one row per frame, in frame order."""
    own = tracked.loc[tracked[FACE_ID].to_numpy() == face_id]
    frames = blank["frame"].to_numpy()
    missing = ~np.isin(frames, own["frame"].to_numpy())
    if from_frame is not None:
        missing &= frames >= from_frame
    parts = [own.drop(columns=[FACE_ID]), blank.loc[missing].drop(columns=[FACE_ID])]
    rows = pd.concat([p for p in parts if len(p)] or parts[:1], ignore_index=True)
    return rows.sort_values("frame", kind="stable").reset_index(drop=True).copy()  # copy: one block per dtype


def _concat(parts: list[pd.DataFrame], by: list[str]) -> pd.DataFrame:
    filled = [p for p in parts if len(p)]
    if not filled:
        return parts[0]
    out = pd.concat(filled, ignore_index=True) if len(filled) > 1 else filled[0]
    return out.sort_values([c for c in by if c in out.columns], kind="stable").reset_index(drop=True)


def step_faces(
    chain: Chain, states: MappingOf[int, MappingOf[str, Any]], tracked: pd.DataFrame | None, final: bool,
    several: bool, hold: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[int, MappingOf[str, Any]], pd.DataFrame | None]:  # fmt: skip
    """Step ``chain`` once per face on its rows of ``tracked`` (raw rows with ``face_id``; None
    when there are none this time). ``several``: rows of faces not found are made for the frames
    a known face missed (module doc); without it rows are taken as they are (one face, or an
    imported table). Returns the finished frame rows, labelled windows and events of every face
    (each with ``face_id``), every face's new stage states, and the rows its first frame stage let
    out (``Chain.step_early``, whose ``hold`` this passes on; None when there were none)."""
    new: dict[int, MappingOf[str, Any]] = dict(states)
    found_ids: list[int] = []
    blank = None
    if tracked is not None and len(tracked):
        ids = tracked[FACE_ID].to_numpy()
        found_ids = sorted({int(i) for i in ids[ids >= 0]})
        blank = _blank(tracked) if several else None
    if not new and (several or not found_ids):
        new[0] = chain.start()  # face 0 starts with the video, found or not
    for face_id in found_ids:
        if face_id not in new:
            new[face_id] = chain.start()
    frame_parts, window_parts, event_parts, early_parts = [], [], [], []
    for face_id in sorted(new):
        rows: pd.DataFrame | None = None
        if tracked is not None and len(tracked):
            if blank is not None:
                first = (
                    None
                    if face_id in states or face_id == 0
                    else int(tracked.loc[tracked[FACE_ID].to_numpy() == face_id, "frame"].min())
                )
                rows = _face_rows(tracked, blank, face_id, first)
            else:
                own = tracked.loc[tracked[FACE_ID].to_numpy() == face_id]
                rows = own.drop(columns=[FACE_ID]).reset_index(drop=True).copy() if len(own) else None
        if rows is not None and not len(rows):
            rows = None
        if rows is None and not final and face_id in states:
            continue  # nothing new for this face
        face_frames, face_windows, face_events, new[face_id], early = chain.step_early(new[face_id], rows, final, hold)
        frame_parts.append(insert_face_id(face_frames, face_id, after="frame"))
        if early is not None and len(early):
            early_parts.append(insert_face_id(early, face_id, after="frame"))
        window_parts.append(insert_face_id(face_windows, face_id, after="window"))
        event_parts.append(insert_face_id(face_events, face_id, after="event"))
    if not frame_parts:  # no face had anything: empty tables with every column
        face_frames, face_windows, face_events, _ = chain.step(chain.start(), None, False)
        frame_parts = [insert_face_id(face_frames, 0, after="frame")]
        window_parts = [insert_face_id(face_windows, 0, after="window")]
        event_parts = [insert_face_id(face_events, 0, after="event")]
    return (
        _concat(frame_parts, ["frame", FACE_ID]),
        _concat(window_parts, ["start_ms", FACE_ID]),
        _concat(event_parts, ["onset_ms", FACE_ID]),
        new,
        _concat(early_parts, ["frame", FACE_ID]) if early_parts else None,
    )
