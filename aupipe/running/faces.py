"""What ``run`` and ``analyze`` do after the chain, face by face: the window model, the
``in_event`` flags and the summary each keep one state per ``face_id`` (docs/faces.md)."""

from __future__ import annotations

from collections.abc import Mapping as MappingOf
from typing import Any

import numpy as np
import pandas as pd

from aupipe.chain.faces import FACE_ID, insert_face_id
from aupipe.chain.stream import StreamState
from aupipe.events import spotting, summary
from aupipe.signal import windows

__all__ = ["by_face", "flag_faces", "pending_frames", "predict_faces", "summary_faces", "summary_table"]


def by_face(table: pd.DataFrame | None) -> dict[int, pd.DataFrame]:
    """The rows of each ``face_id`` (without the column), in the order they come."""
    if table is None or not len(table):
        return {}
    ids = table[FACE_ID].to_numpy()
    return {
        int(i): table.loc[ids == i].drop(columns=[FACE_ID]).reset_index(drop=True) for i in sorted(set(ids.tolist()))
    }


def _join(parts: dict[int, pd.DataFrame], template: pd.DataFrame | None, after: str) -> pd.DataFrame:
    tables = [insert_face_id(part, face_id, after=after) for face_id, part in sorted(parts.items()) if len(part)]
    if not tables:
        return template if template is not None else pd.DataFrame()
    out = pd.concat(tables, ignore_index=True) if len(tables) > 1 else tables[0]
    return out.sort_values(["start_ms", FACE_ID], kind="stable").reset_index(drop=True)


def pending_frames(state: StreamState) -> dict[int, pd.DataFrame | None]:
    """The frames each face's window stage still holds (the window model's context)."""
    return {face_id: stages.get("windows", windows.WindowState()).pending for face_id, stages in state.faces.items()}


def predict_faces(
    predictor: Any, pending: MappingOf[int, pd.DataFrame | None], frames: pd.DataFrame, window_rows: pd.DataFrame,
    rule_weight: float | None,
) -> pd.DataFrame:  # fmt: skip
    """The window model (``aupipe train``) on each face's windows, with that face's frames."""
    if predictor is None or not len(window_rows):
        return window_rows
    frames_of = by_face(frames)
    out = {}
    for face_id, rows in by_face(window_rows).items():
        context = [p for p in (pending.get(face_id), frames_of.get(face_id)) if p is not None and len(p)]
        context_table = pd.concat(context, ignore_index=True) if context else frames.iloc[0:0].drop(columns=[FACE_ID])
        out[face_id] = predictor.predict_windows(context_table, rows, rule_weight)
    return _join(out, None, "window")


def flag_faces(
    flags: MappingOf[int, spotting.FlagState], window_rows: pd.DataFrame, events: pd.DataFrame, state: StreamState,
    final: bool,
) -> tuple[pd.DataFrame, dict[int, spotting.FlagState]]:  # fmt: skip
    """``spotting.flag_step`` per face: each face's windows wait for its own events."""
    new = dict(flags)
    rows_of, events_of = by_face(window_rows), by_face(events)
    released = {}
    template = None
    for face_id in sorted(set(new) | set(rows_of) | set(state.faces)):
        done_ms = state.face(face_id).get("spotting", spotting.SpottingState()).done_ms
        out, new[face_id] = spotting.flag_step(
            new.get(face_id, spotting.FlagState()), rows_of.get(face_id), events_of.get(face_id), done_ms, final
        )
        released[face_id] = out
    if not any(len(p) for p in released.values()):
        template = window_rows.assign(in_event=np.zeros(len(window_rows), bool)).iloc[0:0]
    return _join(released, template, "window"), new


def summary_faces(
    states: MappingOf[int, summary.SummaryState], window_rows: pd.DataFrame, events: pd.DataFrame,
    settings: summary.SummarySettings,
) -> dict[int, summary.SummaryState]:  # fmt: skip
    """Fold each face's windows and events into its summary state."""
    new = dict(states)
    rows_of, events_of = by_face(window_rows), by_face(events)
    for face_id in sorted(set(rows_of) | set(events_of)):
        state = new.get(face_id, summary.SummaryState())
        new[face_id] = summary.step(state, rows_of.get(face_id), events_of.get(face_id), settings)
    return new


def summary_table(states: MappingOf[int, summary.SummaryState], settings: summary.SummarySettings) -> pd.DataFrame:
    """Every face's summary rows (``summary.table``), each with its ``face_id``; face 0's empty
    summary when there is none."""
    tables = [insert_face_id(summary.table(s, settings), f, after="segment") for f, s in sorted(states.items())]
    tables = [t for t in tables if len(t)]
    if not tables:
        return insert_face_id(summary.table(summary.SummaryState(), settings), 0, after="segment")
    return pd.concat(tables, ignore_index=True)
