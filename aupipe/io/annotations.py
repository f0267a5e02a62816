"""Events for the coders' own tools: ELAN annotation files (``.eaf``) and BORIS import sheets.

Both writers take the events table (docs/spotting.md, "The events table") and, for ELAN, the
window table, as DataFrame chunks, and write once, at ``commit``: ELAN and BORIS need every event
at once (lanes, sorting), and events are few (a handful per minute), so they are held in memory;
the ELAN label track is kept as merged runs. The file goes through a temporary file beside the
target that is renamed into place, like the table writers of ``aupipe.io.writers``: a crash
leaves no half-written file, and an interrupted run that is committed keeps every event found.

Times are whole milliseconds of the video's presentation time (``onset_ms`` and ``offset_ms``
rounded; neither tool holds finer times). An event whose rounded offset is not after its rounded
onset (a one-frame event) ends 1 ms after it starts, so that it is a valid ELAN annotation and a
BORIS state event with a STOP after its START. Layout and rationale: docs/outputs.md,
"Events for ELAN and BORIS".
"""

from __future__ import annotations

import importlib.util
import io
import os
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd

from aupipe.errors import AupipeError, OutputError
from aupipe.io.writers import move_into_place, temporary_beside

__all__ = [
    "BORIS_COLUMNS", "BORIS_SUBJECT", "DETAILS_SUFFIX", "EAF_SUFFIX", "EVENT_KINDS", "LABELS_TIER",
    "AtomicBorisWriter", "AtomicEafWriter", "LabelTrack", "boris_format", "boris_table", "elan_bytes",
    "elan_document", "event_details", "event_spans", "event_value", "is_elan", "lanes", "open_annotation_writer",
    "tier_name",
]  # fmt: skip

EAF_SUFFIX = ".eaf"
BORIS_SUFFIXES = (".csv", ".xlsx")
EVENT_KINDS = ("micro", "macro")  # always get a tier (and lanes "micro 2", ... when events of a kind overlap)
LABELS_TIER = "labels"
DETAILS_SUFFIX = " details"  # child tier of each event tier: the event's full details
SEPARATOR = " \u00b7 "  # " · " between the parts of a value
BORIS_SUBJECT = "face"
# BORIS reads the first five (its spreadsheet import, case-insensitive, any order) and ignores the rest.
BORIS_COLUMNS = ("time", "subject", "code", "modifier", "comment", "status", "media_file", "fps", "event")
_EVENT_COLUMNS = ("event", "onset_ms", "apex_ms", "offset_ms", "onset_frame", "apex_frame", "offset_frame", "kind",
                  "aus", "peaks")  # fmt: skip
# ELAN's MIME types for media descriptors; other videos get its generic "video/*".
MIME_TYPES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mpg": "video/mpeg", ".mpeg": "video/mpeg",
              ".mov": "video/quicktime", ".wav": "audio/x-wav"}  # fmt: skip
GENERIC_VIDEO = "video/*"


def is_elan(path: str | Path) -> bool:
    """True when ``path`` names an ELAN file (suffix ``.eaf``, any case)."""
    return Path(path).suffix.lower() == EAF_SUFFIX


def boris_format(path: str | Path) -> str:
    """``csv`` or ``xlsx`` for a BORIS sheet ``path``, checked before any work: another suffix is an
    OutputError (exit 4); ``.xlsx`` without openpyxl is an AupipeError (exit 1)."""
    suffix = Path(path).suffix.lower()
    if suffix not in BORIS_SUFFIXES:
        raise OutputError(f"{path}: a BORIS import sheet is .xlsx (BORIS reads it directly) or .csv")
    if suffix == ".xlsx" and importlib.util.find_spec("openpyxl") is None:
        raise AupipeError(
            f"{path}: writing .xlsx needs openpyxl (pip install openpyxl, or aupipe[boris]); or write .csv"
        )
    return suffix[1:]


def event_spans(events: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Whole-ms [start, end) of each event (int64 arrays): onset and offset rounded, start >= 0,
    end >= start + 1 (a one-frame event lasts 1 ms)."""
    start = np.maximum(np.rint(events["onset_ms"].to_numpy(float)), 0).astype(np.int64)
    end = np.maximum(np.rint(events["offset_ms"].to_numpy(float)).astype(np.int64), start + 1)
    return start, end


def lanes(start: np.ndarray, end: np.ndarray, touching: bool = True) -> np.ndarray:
    """Lane 0, 1, ... of each interval [start, end) so that no two in a lane overlap: in order of
    start, each takes the first lane whose last interval has ended (by its start when
    ``touching``, strictly before it otherwise: BORIS needs a STOP before the next START)."""
    lane = np.zeros(len(start), dtype=np.int64)
    ends: list[int] = []
    for i in np.lexsort((end, start)):
        free = [k for k, e in enumerate(ends) if (e <= start[i] if touching else e < start[i])]
        lane[i] = free[0] if free else len(ends)
        if free:
            ends[free[0]] = int(end[i])
        else:
            ends.append(int(end[i]))
    return lane


def tier_name(kind: str, lane: int) -> str:
    """``micro`` for lane 0, ``micro 2`` for lane 1, ..."""
    return kind if lane == 0 else f"{kind} {lane + 1}"


def _text(value: Any) -> str:
    """A table cell as text; '' for NaN / None."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(value)


def _aus(record: Mapping[str, Any]) -> str:
    """The event's AUs joined by '+': ``AU04+AU07``."""
    return "+".join(_text(record.get("aus")).split())


def event_value(record: Mapping[str, Any]) -> str:
    """An event annotation's value: its AUs (strongest first) and its label, ``AU04+AU07 · annoyed``."""
    parts = [_aus(record), _text(record.get("emotion"))]
    return SEPARATOR.join(p for p in parts if p) or _text(record.get("kind"))


def event_details(record: Mapping[str, Any]) -> str:
    """Everything else a coder needs about an event, on one line: ``event 3 · apex 2736 ms · frames
    77/82/85 (onset/apex/offset) · AU05=1.1 AU07=2.5 · confidence 0.80 · bored (sadness, 0.61) ·
    within macro`` (confidence only when the table has it; the label's core emotion and score)."""
    parts = [
        f"event {int(record['event'])}",
        f"apex {float(record['apex_ms']):.0f} ms",
        f"frames {int(record['onset_frame'])}/{int(record['apex_frame'])}/{int(record['offset_frame'])} "
        "(onset/apex/offset)",
        _text(record.get("peaks")),
        f"confidence {float(record['confidence']):.2f}" if _text(record.get("confidence")) else "",
    ]
    emotion, core, score = _text(record.get("emotion")), _text(record.get("core_emotion")), record.get("emotion_score")
    if emotion:
        extra = [core if core != emotion else "", f"{float(score):.2f}" if _text(score) and float(score) > 0 else ""]
        parts.append(f"{emotion} ({', '.join(p for p in extra if p)})" if any(extra) else emotion)
    if bool(record.get("within_macro", False)):
        parts.append("within macro")
    return SEPARATOR.join(p for p in parts if p)


class LabelTrack:
    """The window label track as runs that never overlap (an ELAN tier needs that).

    Windows overlap when the stride is shorter than the window, so each window stands for the
    ``stride_ms`` around its centre, clipped to the window itself (the first window from its
    start, the last to its end, so the track covers the windows); consecutive windows with the
    same ``column`` value are merged into one run. Only the runs are kept (ms, floats).
    """

    def __init__(self, stride_ms: float, column: str = "emotion") -> None:
        self.stride_ms = float(stride_ms)
        self.column = column
        self.runs: list[list[Any]] = []  # [start_ms, end_ms, label]
        self.last_end_ms = -np.inf  # end of the last window added

    def add(self, windows: pd.DataFrame) -> None:
        """Append windows (the window table's rows, in order)."""
        if windows.empty or self.column not in windows:
            return
        start, end = windows["start_ms"].to_numpy(float), windows["end_ms"].to_numpy(float)
        centre, half = (start + end) / 2, self.stride_ms / 2
        own_start, own_end = np.maximum(start, centre - half), np.minimum(end, centre + half)
        if not self.runs:
            own_start[0] = start[0]
        self.last_end_ms = max(self.last_end_ms, float(end[-1]))
        for s, e, label in zip(own_start, own_end, windows[self.column].map(_text), strict=True):
            if self.runs and self.runs[-1][2] == label and s <= self.runs[-1][1] + 1e-6:
                self.runs[-1][1] = max(self.runs[-1][1], e)
            else:
                self.runs.append([s, e, label])

    def annotations(self) -> list[tuple[int, int, str]]:
        """The runs in whole ms, (start, end, label), each starting at or after the previous end."""
        out: list[tuple[int, int, str]] = []
        previous = 0
        for i, (s, e, label) in enumerate(self.runs):
            last = i == len(self.runs) - 1
            a, b = max(int(np.rint(s)), previous), int(np.rint(max(e, self.last_end_ms) if last else e))
            if b > a:
                out.append((a, b, label))
                previous = b
        return out


def _media_uris(media: Path, folder: Path) -> tuple[str, str]:
    """(absolute file:// URI, URI relative to ``folder``) of the media file, as ELAN links them."""
    absolute = media.resolve()
    relative = Path(os.path.relpath(absolute, folder.resolve())).as_posix()
    if not relative.startswith("../"):
        relative = f"./{relative}"
    return absolute.as_uri(), urllib.parse.quote(relative)


def elan_document(
    events: pd.DataFrame, labels: Sequence[tuple[int, int, str]], media: Path | None, eaf_path: Path
) -> Any:
    """A ``pympi.Elan.Eaf`` of the events and the label track, linked to ``media`` (None: no media).

    Tiers, in this order: per kind (``micro``, ``macro``, then any other) one tier per lane
    (``micro``, ``micro 2``, ...: overlapping events of a kind go to separate lanes), each with a
    child tier ``<tier> details`` (one reference annotation per event, ``event_details``); then
    ``labels`` (``labels``: (start_ms, end_ms, label), non-overlapping).
    """
    from pympi.Elan import Eaf

    from aupipe.version import __version__

    annotator = f"aupipe {__version__}"
    eaf = Eaf(author="aupipe")
    eaf.remove_tier("default")
    eaf.add_linguistic_type("event")
    eaf.add_linguistic_type("details", constraints="Symbolic_Association", timealignable=False)
    eaf.add_linguistic_type("label")
    if media is not None:
        uri, relative = _media_uris(media, eaf_path.parent)
        eaf.add_linked_file(uri, relpath=relative, mimetype=MIME_TYPES.get(media.suffix.lower(), GENERIC_VIDEO))
    kinds = [*EVENT_KINDS, *sorted({_text(k) for k in events["kind"]} - set(EVENT_KINDS))]
    for kind in kinds:
        rows = events[events["kind"] == kind]
        start, end = event_spans(rows)
        lane = lanes(start, end)
        for k in range(int(lane.max()) + 1 if len(lane) else 1):
            eaf.add_tier(tier_name(kind, k), ling="event", ann=annotator)
            eaf.add_tier(tier_name(kind, k) + DETAILS_SUFFIX, ling="details", parent=tier_name(kind, k), ann=annotator)
        for record, s, e, k in zip(rows.to_dict("records"), start, end, lane, strict=True):
            name = tier_name(kind, int(k))
            eaf.add_annotation(name, int(s), int(e), event_value(record))
            eaf.add_ref_annotation(name + DETAILS_SUFFIX, name, (int(s) + int(e)) / 2, event_details(record))
    eaf.add_tier(LABELS_TIER, ling="label", ann=annotator)
    for s, e, label in labels:
        eaf.add_annotation(LABELS_TIER, int(s), int(e), label)
    eaf.properties = [(k, v) for k, v in eaf.properties if k != "lastUsedAnnotation"]
    eaf.properties.append(("lastUsedAnnotation", eaf.maxaid))  # ELAN numbers new annotations after it
    return eaf


def elan_bytes(eaf: Any) -> bytes:
    """The .eaf file's content (UTF-8 XML with its declaration), as ``pympi.Elan.to_eaf`` writes it."""
    from xml.etree import ElementTree

    from pympi.Elan import to_adocument

    buffer = io.BytesIO()
    ElementTree.ElementTree(to_adocument(eaf, pretty=True)).write(buffer, xml_declaration=True, encoding="UTF-8")
    return buffer.getvalue()


def boris_table(events: pd.DataFrame, media: Path | None, fps: float) -> pd.DataFrame:
    """BORIS rows (``BORIS_COLUMNS``): per event a START row at its onset and a STOP row at its
    offset (s, 3 decimals), subject ``face``, behaviour (``code``) its kind, modifier its AUs
    (``AU04+AU07``), comment its label and details; sorted by time, STOPs before STARTs at a tie.

    BORIS pairs a state behaviour's rows by subject, behaviour and modifier, in time order; an
    event starting before an earlier one with the same kind and AUs has stopped would be
    mis-paired, so it gets the behaviour ``micro 2`` (and so on).
    """
    records = events.to_dict("records")
    start, end = event_spans(events)
    modifiers = [_aus(r) for r in records]
    kinds = [_text(r.get("kind")) for r in records]
    codes = list(kinds)
    for key in sorted(set(zip(kinds, modifiers, strict=True))):
        index = np.array([i for i, pair in enumerate(zip(kinds, modifiers, strict=True)) if pair == key], dtype=int)
        for i, lane in zip(index, lanes(start[index], end[index], touching=False), strict=True):
            codes[i] = tier_name(key[0], int(lane))
    media_file = str(media.resolve()) if media is not None else ""
    rows = []
    for i, record in enumerate(records):
        comment = event_details(record)
        for status, time_ms in (("START", start[i]), ("STOP", end[i])):
            rows.append((int(time_ms), status == "START", int(record["event"]), round(int(time_ms) / 1000.0, 3),
                         BORIS_SUBJECT, codes[i], modifiers[i], comment, status, media_file, float(fps),
                         int(record["event"])))  # fmt: skip
    rows.sort(key=lambda row: row[:3])  # time, STOP (False) before START, event
    return pd.DataFrame([row[3:] for row in rows], columns=list(BORIS_COLUMNS))


class _AnnotationWriter:
    """Events collected chunk by chunk, written on ``commit`` through a temporary file beside
    ``path``; leaving the ``with`` block without ``commit`` drops it (``abort``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd: int | None
        self._fd, self._tmp = temporary_beside(self.path)
        self._events: list[pd.DataFrame] = []
        self._finished = self._committed = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()

    def write(self, events: pd.DataFrame) -> None:
        """Add events (rows of the events table)."""
        if self._fd is None:
            raise OutputError(f"{self.path}: writer already closed")
        if len(events):
            self._events.append(events)

    def write_windows(self, windows: pd.DataFrame) -> None:
        """Add windows (rows of the window table); unused unless the format shows them."""

    def content(self, events: pd.DataFrame) -> bytes:
        """The file's bytes for all events."""
        raise NotImplementedError

    def finish(self, empty: pd.DataFrame | Sequence[str] | None = None) -> None:
        """Write the whole file to the temporary file (done once; ``commit`` only renames after it).
        ``empty``: the events table (or its columns) used when no event came."""
        if self._fd is None:
            if self._finished:
                return
            raise OutputError(f"{self.path}: writer already closed")
        if self._events:
            events = pd.concat(self._events, ignore_index=True)
        elif isinstance(empty, pd.DataFrame):
            events = empty.iloc[:0]
        else:
            events = pd.DataFrame(columns=list(dict.fromkeys([*_EVENT_COLUMNS, *(empty or [])])))
        data = self.content(events)
        fd, self._fd = self._fd, None
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        self._finished = True

    def commit(self, empty: pd.DataFrame | Sequence[str] | None = None) -> Path:
        """``finish`` (if not yet) and move the file into place."""
        if self._committed:
            raise OutputError(f"{self.path}: writer already closed")
        self.finish(empty)
        move_into_place(self._tmp, self.path)
        self._committed = True
        return self.path

    def abort(self) -> None:
        """Drop the temporary file; the target is left as it was (nothing happens after ``commit``)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if not self._committed:
            self._tmp.unlink(missing_ok=True)


class AtomicEafWriter(_AnnotationWriter):
    """An ELAN ``.eaf`` of the events (``micro`` / ``macro`` tiers with ``details``) and of the
    windows' ``emotion`` track (``labels``), linked to ``media`` (the video; None for images).
    ``stride_ms``: the windows' stride (for the label track, ``LabelTrack``)."""

    def __init__(self, path: str | Path, media: str | Path | None, stride_ms: float) -> None:
        super().__init__(path)
        self.media = Path(media) if media is not None else None
        self.labels = LabelTrack(stride_ms)

    def write_windows(self, windows: pd.DataFrame) -> None:
        """Add windows to the label track."""
        self.labels.add(windows)

    def content(self, events: pd.DataFrame) -> bytes:
        return elan_bytes(elan_document(events, self.labels.annotations(), self.media, self.path))


class AtomicBorisWriter(_AnnotationWriter):
    """A BORIS import sheet (``boris_table``) as ``.csv`` or ``.xlsx`` (openpyxl), for the video
    ``media`` at ``fps`` frames/s."""

    def __init__(self, path: str | Path, media: str | Path | None, fps: float) -> None:
        self.format = boris_format(path)
        super().__init__(path)
        self.media = Path(media) if media is not None else None
        self.fps = float(fps)

    def content(self, events: pd.DataFrame) -> bytes:
        table = boris_table(events, self.media, self.fps)
        if self.format == "xlsx":
            buffer = io.BytesIO()
            table.to_excel(buffer, index=False, engine="openpyxl")
            return buffer.getvalue()
        return table.to_csv(index=False, lineterminator="\n").encode("utf-8")


def open_annotation_writer(
    path: str | Path, kind: str, media: str | Path | None, fps: float, stride_ms: float
) -> AtomicEafWriter | AtomicBorisWriter:
    """The writer for ``kind`` ``"elan"`` (an .eaf) or ``"boris"`` (a .csv / .xlsx sheet)."""
    if kind == "elan":
        return AtomicEafWriter(path, media, stride_ms)
    return AtomicBorisWriter(path, media, fps)
