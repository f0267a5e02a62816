"""What ``aupipe run --report`` keeps while it streams, to build the report at the end of the same
pass: the report's columns of every frame and window (``tables.frame_columns``, about 40 numbers
a frame: some 35 MB for an hour at 30 fps) and the events."""

from __future__ import annotations

import pandas as pd

from aupipe.reporting.tables import ReportTables, frame_columns, prepare, window_columns

__all__ = ["RunCollector"]


class RunCollector:
    """Collects the chunks of a streamed run (``add``) into the report's tables (``tables``), each
    float as the CSV writer writes it, so the page equals one built later from the files."""

    def __init__(self) -> None:
        self._frames: list[pd.DataFrame] = []
        self._windows: list[pd.DataFrame] = []
        self._events: list[pd.DataFrame] = []

    def add(self, frames: pd.DataFrame | None, windows: pd.DataFrame | None, events: pd.DataFrame | None) -> None:
        """Keep the report's columns of a chunk's finished frame rows and window rows (with
        ``in_event``), and its events; ``tables`` rounds them as written, once."""
        if frames is not None and len(frames):
            self._frames.append(frames[frame_columns(frames.columns)].copy())
        if windows is not None and len(windows):
            self._windows.append(windows[window_columns(windows.columns)].copy())
        if events is not None and len(events):
            self._events.append(events)

    def tables(self, empty_windows: pd.DataFrame, baseline: pd.DataFrame | None = None,
               summary: pd.DataFrame | None = None, empty_events: pd.DataFrame | None = None,
               ) -> ReportTables:  # fmt: skip
        """The report's tables of everything added; ``empty_windows`` / ``empty_events``: the
        window and events tables' columns, for a run that made none (``empty_events`` None: there
        was no spotting, so no events table); ``baseline`` / ``summary``: those tables, when known."""
        windows = pd.concat(self._windows, ignore_index=True) if self._windows else empty_windows
        frames = pd.concat(self._frames, ignore_index=True) if self._frames else None
        events = pd.concat(self._events, ignore_index=True) if self._events else empty_events
        return prepare(windows, events, frames, summary, baseline)
