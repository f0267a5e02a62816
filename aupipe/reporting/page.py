"""The report page: built from a video's tables (jinja2; the script, styles and images inline, so
the page works offline and loads nothing), written atomically, and its figures (matplotlib).

``from_sources`` builds it from tables already written (``aupipe report``); ``build`` from tables
in memory (``aupipe run --report``, ``aupipe.report``). See docs/report.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import pandas as pd

from aupipe.errors import MappingError, OutputError
from aupipe.events import summary as clip_summary
from aupipe.io.writers import check_outputs, move_into_place, temporary_beside
from aupipe.reporting import cards as event_cards
from aupipe.reporting import content, figures, stills
from aupipe.reporting import tables as report_tables
from aupipe.reporting.tables import ReportTables, check_tables, find_tables, prepare, read_tables
from aupipe.rules import mapping as mappings
from aupipe.rules.mapping_types import Mapping
from aupipe.signal import video
from aupipe.version import __version__

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "PageWriter", "Report", "ReportSettings", "build", "fill_pages", "from_result", "from_sources", "infer_mapping",
    "open_pages", "write_report",
]  # fmt: skip

TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass(frozen=True)
class ReportSettings:
    """cards: which events get stills and how big (``cards.CardSettings``); top_events: events shown
    in the summary image; png_dpi: its resolution (dots per inch; the figure is 12 in wide)."""

    cards: event_cards.CardSettings = event_cards.CardSettings()
    top_events: int = 4
    png_dpi: int = 130
    face_id: int | None = None  # the face shown, of tables with several (None: the lowest id)


@dataclass(frozen=True)
class Report:
    """A built report: ``html`` (the whole page), the data it shows (``data``: the timeline's,
    ``overview``, ``panels`` per AU, ``cards`` per event) and its figures (matplotlib, made on
    request: ``timeline_figure()``, ``au_figure()``, ``summary_figure()``, or ``figures``)."""

    html: str
    data: dict[str, Any]
    overview: dict[str, Any]
    panels: tuple[dict[str, Any], ...]
    cards: tuple[dict[str, Any], ...]
    settings: ReportSettings = field(default_factory=ReportSettings)
    html_path: Path | None = None
    png_path: Path | None = None

    @property
    def size_bytes(self) -> int:
        """The page's size in bytes (UTF-8)."""
        return len(self.html.encode("utf-8"))

    def timeline_figure(self) -> Figure:
        """The AU heat map with the emotion ribbon and event bands over the whole video."""
        return figures.timeline_figure(self.data)

    def au_figure(self) -> Figure:
        """Every AU's time course (0-5), left and right for the one-sided AUs."""
        return figures.au_figure(self.data)

    def summary_figure(self) -> Figure:
        """The timeline and the top events with their stills (the ``--png`` image)."""
        return figures.summary_figure(self.data, self.cards, self.settings.top_events)

    @property
    def figures(self) -> dict[str, Figure]:
        """``timeline``, ``aus`` and ``summary`` figures (made now; each call makes new ones)."""
        return {"timeline": self.timeline_figure(), "aus": self.au_figure(), "summary": self.summary_figure()}

    def png(self) -> bytes:
        """The summary figure as PNG bytes."""
        return figures.png_bytes(self.summary_figure(), self.settings.png_dpi)


def infer_mapping(windows: pd.DataFrame, given: str | Path | Mapping | None = None) -> Mapping | None:
    """The mapping that labelled ``windows``: ``given`` (a name, a path or a Mapping) when its
    categories are the windows' ``score_`` columns, else the shipped mapping whose are; None when
    none fits (the page then shows no rules). MappingError for a ``given`` one that does not fit."""
    columns = tuple(c for c in windows.columns if c.startswith("score_"))
    if given is not None:
        chosen = given if isinstance(given, Mapping) else mappings.load_mapping(given)
        if columns and chosen.score_columns != columns:
            raise MappingError(f"{chosen.name}: its categories are not the ones that labelled these windows")
        return chosen
    for name in [mappings.DEFAULT_MAPPING, *mappings.list_mappings()]:
        candidate = mappings.load_mapping(name)
        if candidate.score_columns == columns:
            return candidate
    return None


def _clock(ms: float | None, digits: int = 1) -> str:
    """Milliseconds as ``m:ss.s`` (``h:mm:ss.s`` from an hour on), ``digits`` decimals of a second."""
    if ms is None or not math.isfinite(ms):
        return "–"
    total = round(max(ms, 0.0) / 1000.0, digits)
    minutes, sec = divmod(total, 60.0)
    hours, minutes = divmod(int(minutes), 60)
    text = f"{sec:0{3 + digits if digits else 2}.{digits}f}"
    return f"{hours}:{minutes:02d}:{text}" if hours else f"{minutes}:{text}"


def _pct(share: float | None) -> str:
    return "–" if share is None or not math.isfinite(share) else f"{100 * share:.0f}%"


def _one(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.1f}"


def _signed(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:+.1f}"


def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)  # fmt: skip
    env.filters.update(clock=_clock, pct=_pct, one=_one, signed=_signed)
    return env


def _baseline(tables: ReportTables, images: dict[int, np.ndarray], neutral: np.ndarray | None,
              settings: stills.StillSettings) -> dict[str, Any]:  # fmt: skip
    choice = event_cards.baseline_still(tables)
    table = tables.baseline
    info: dict[str, Any] = {"source": "unknown", "n_frames": None, "confidence": None, "caption": choice.caption,
                            "uri": None}  # fmt: skip
    if table is not None and len(table):
        info["source"] = str(table["source"].iloc[0])
        info["n_frames"] = int(table["n_frames"].iloc[0]) if "n_frames" in table else None
        info["confidence"] = float(table["confidence"].iloc[0]) if "confidence" in table else None
    elif "baseline_confidence" in tables.windows and len(tables.windows):
        info["confidence"] = float(tables.windows["baseline_confidence"].iloc[0])
    picture = neutral if choice.clip is not None else images.get(choice.frame) if choice.frame is not None else None
    if picture is not None:
        frames = None if choice.clip is not None else tables.frames
        crop = stills.crop_of(frames, [choice.frame or 0], picture.shape, settings.margin)
        info["uri"] = stills.data_uri(stills.still(picture, crop, settings.size_px), settings.quality)
    return info


def _summary_rows(tables: ReportTables, mapping: Mapping | None) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    table = tables.summary
    if table is None:
        chosen = clip_summary.SummarySettings.for_mapping(mapping) if mapping else clip_summary.SummarySettings()
        table = clip_summary.summarize(tables.windows, tables.events if len(tables.events) else None, chosen)
    rows = table.to_dict("records")
    whole = next((r for r in rows if str(r["segment"]) == "all"), None)
    return whole, [r for r in rows if str(r["segment"]) != "all"]


def build(
    path: str | Path,
    tables: ReportTables,
    info: video.VideoInfo,
    mapping: Mapping | None = None,
    settings: ReportSettings = ReportSettings(),
    video_settings: video.VideoSettings | None = None,
) -> Report:
    """The report of the video ``path`` (``info``: its header) from its ``tables``; ``mapping``:
    the mapping that labelled the windows (None: no rules shown). Stills are read from the video
    by seeking to their frames. Tables of several faces show one (``settings.face_id``)."""
    tables, face_id, n_faces = report_tables.one_face(tables, settings.face_id)
    data = content.timeline_data(tables, mapping, info)
    overview = content.overview(tables, mapping, info)
    colours = {e["label"]: e["colour"] for e in overview["emotions"]}
    chosen = event_cards.with_stills(tables.events, settings.cards.max_stills)
    choice = event_cards.baseline_still(tables)
    wanted = event_cards.frames_needed(tables.events, chosen) + ([choice.frame] if choice.frame is not None and
                                                                  choice.clip is None else [])  # fmt: skip
    images = stills.read_frames(path, wanted, video_settings or video.VideoSettings())
    neutral = stills.read_frames(choice.clip, [0]).get(0) if choice.clip is not None else None
    cards = event_cards.cards(tables, mapping, images, chosen, colours, settings.cards)
    panels = content.au_panels(tables, tables.events)
    whole, segments = _summary_rows(tables, mapping)
    kinds = tables.events["kind"].astype(str).value_counts() if len(tables.events) else pd.Series(dtype=int)
    title = Path(path).name or str(path)
    if n_faces > 1:
        title += f" — face {face_id} of {n_faces}"
    data["title"] = title
    page = _environment().get_template("report.html.j2").render(
        title=title, version=__version__, ov=overview, q=overview["quality"], cards=cards, panels=panels,
        baseline=_baseline(tables, images, neutral, settings.cards.stills), whole=whole, segments=segments,
        kinds=", ".join(f"{n} {k}" for k, n in kinds.items()), has_events_table="kind" in tables.events,
        sided=bool(data["sided"]["aus"]), ramp=data["lut"][0:251:25],
        css=_markup((TEMPLATES / "report.css").read_text(encoding="utf-8")),
        js=_markup((TEMPLATES / "report.js").read_text(encoding="utf-8")),
        data_json=_markup(json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")),
    )  # fmt: skip
    return Report(page, data, overview, tuple(panels), tuple(cards), settings)


def _markup(text: str) -> Any:
    from markupsafe import Markup

    return Markup(text)


class PageWriter:
    """Bytes to ``path`` through a temporary file beside it (``.NAME.<random>.part``): ``commit``
    renames it into place, leaving the ``with`` block without a commit drops it. OutputError (exit
    4) at once for a missing folder or a folder given as the file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        fd, self._tmp = temporary_beside(self.path)
        os.close(fd)
        self._done = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()

    def write(self, payload: bytes) -> None:
        """Write the whole file (again)."""
        try:
            with open(self._tmp, "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as err:
            raise OutputError(f"{self.path}: cannot write output ({err.strerror})") from None

    def commit(self) -> Path:
        """Move the written file into place."""
        self._done = True
        move_into_place(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the temporary file unless committed."""
        if not self._done:
            self._tmp.unlink(missing_ok=True)


def open_pages(files: contextlib.ExitStack, html_out: str | Path | None, png_out: str | Path | None
               ) -> dict[str, PageWriter]:  # fmt: skip
    """Writers for the page and the summary PNG, entered on ``files`` (so they fail before any work
    and are dropped unless committed): ``{"html": ..., "png": ...}`` for the outputs given."""
    targets = {"html": html_out, "png": png_out}
    return {name: files.enter_context(PageWriter(target)) for name, target in targets.items() if target is not None}


def fill_pages(writers: dict[str, PageWriter], report: Report) -> Report:
    """Write the report into ``writers`` (``open_pages``) without committing them."""
    if "html" in writers:
        writers["html"].write(report.html.encode("utf-8"))
    if "png" in writers:
        writers["png"].write(report.png())
    html, png = writers.get("html"), writers.get("png")
    return dataclasses.replace(report, html_path=html.path if html else None, png_path=png.path if png else None)


def write_report(report: Report, html_out: str | Path | None, png_out: str | Path | None = None) -> Report:
    """Write the page and/or the summary PNG, each complete or not at all, renamed together."""
    with contextlib.ExitStack() as files:
        writers = open_pages(files, html_out, png_out)
        report = fill_pages(writers, report)
        for writer in writers.values():
            writer.commit()
    return report


def from_result(
    path: str | Path,
    result: Any,
    html_out: str | Path | None = None,
    png_out: str | Path | None = None,
    mapping: str | Path | Mapping | None = None,
    settings: ReportSettings = ReportSettings(),
) -> Report:
    """The report of ``aupipe.analyze(path)``'s ``result`` (its ``windows``, ``events``, ``frames``,
    ``summary``, ``baseline``, ``video``), written to ``html_out`` / ``png_out`` when given."""
    check_outputs([path], {"report": html_out, "png": png_out})
    baseline = result.baseline.table() if result.baseline is not None else None
    tables = prepare(result.windows, result.events, result.frames, result.summary, baseline)
    if mapping is None and result.mapping_name in mappings.list_mappings():
        mapping = result.mapping_name
    report = build(path, tables, result.video, infer_mapping(tables.windows, mapping), settings)
    return write_report(report, html_out, png_out) if html_out is not None or png_out is not None else report


def from_sources(
    path: str | Path,
    sources: Sequence[str | Path],
    html_out: str | Path | None = None,
    png_out: str | Path | None = None,
    mapping: str | Path | Mapping | None = None,
    partial: bool = False,
    settings: ReportSettings = ReportSettings(),
) -> Report:
    """The report of the video ``path`` from tables already written (``sources``: folders and table
    files, ``tables.find_tables``), checked to be this video's (``partial``: an interrupted run's
    tables may be shorter); written to ``html_out`` / ``png_out`` when given. No output may be the
    video or a table (OutputError, before any work)."""
    info = video.probe(path)
    paths = find_tables(path, sources)
    check_outputs([path, *paths.values()], {"report": html_out, "png": png_out})
    with contextlib.ExitStack() as files:
        writers = open_pages(files, html_out, png_out)
        tables = read_tables(paths)
        check_tables(tables, info, partial)
        report = fill_pages(writers, build(path, tables, info, infer_mapping(tables.windows, mapping), settings))
        for writer in writers.values():
            writer.commit()
    return report
