"""The report's static figures (matplotlib, no pyplot, no display needed): the AU timeline, the AU
time courses, and the summary image (timeline plus the top events) for papers and slides.

They draw from the same data as the page (``content.timeline_data``), so page and figures agree.
"""

from __future__ import annotations

import base64
import io
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from aupipe.reporting.content import NO_FACE, SCALE

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["au_figure", "decode", "png_bytes", "summary_figure", "timeline_figure", "unpacked"]

#: Columns the static heat map is pooled to (max per column, as the page's overview).
COLUMNS = 1600
_MICRO, _MACRO = "#0a84ff", "#11a36a"


def unpacked(b64: str) -> np.ndarray:
    """The bytes of a ``content.packed`` table (rows one after the other)."""
    return np.frombuffer(zlib.decompress(base64.b64decode(b64)), dtype=np.uint8)


def decode(b64: str, rows: int) -> np.ndarray:
    """A ``content.packed`` byte table as intensities (n samples x rows, 0-5), NaN for no face."""
    raw = unpacked(b64).reshape(rows, -1).T if rows else np.zeros((0, 0))
    return np.where(raw == NO_FACE, np.nan, raw / SCALE)


def _pool(values: np.ndarray, columns: int) -> np.ndarray:
    """(columns, rows) max over equal slices of ``values`` (n, rows); all-NaN slices stay NaN."""
    n = len(values)
    if n <= columns:
        return values
    edges = np.linspace(0, n, columns + 1).astype(int)
    filled = np.nan_to_num(values, nan=-1.0)
    pooled = np.maximum.reduceat(filled, edges[:-1], axis=0)
    return np.where(pooled < 0, np.nan, pooled)


def _pool_labels(codes: np.ndarray, n_labels: int, columns: int) -> np.ndarray:
    """The most frequent label code in each of ``columns`` equal slices of ``codes``."""
    if len(codes) <= columns:
        return codes
    slot = (np.arange(len(codes)) * columns // len(codes)).astype(int)
    counts = np.zeros((columns, max(n_labels, 1)), dtype=np.int64)
    np.add.at(counts, (slot, codes.astype(int)), 1)
    return counts.argmax(axis=1)


def _clock(seconds: float, _pos: object = None) -> str:
    total = round(max(seconds, 0.0), 1)
    minutes, sec = divmod(total, 60.0)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{sec:04.1f}" if hours else f"{minutes}:{sec:04.1f}"


def _cmap(data: dict[str, Any]) -> Any:
    from matplotlib.colors import ListedColormap

    return ListedColormap(data["lut"][:251]).with_extremes(bad="#c8c8c8")


def draw_timeline(heat_ax: Axes, ribbon_ax: Axes, data: dict[str, Any]) -> None:
    """The heat map (AU x time, 0-5) on ``heat_ax`` with the event bands, and the emotion ribbon on
    ``ribbon_ax`` (which shares the time axis, in seconds)."""
    from matplotlib.colors import ListedColormap
    from matplotlib.ticker import FuncFormatter

    aus, heat = data["aus"], data["heat"]
    values = decode(heat["data"], len(aus))
    end_s = data["duration_ms"] / 1000.0
    t0, t1 = heat["t0"] / 1000.0, (heat["t0"] + heat["n"] * heat["step"]) / 1000.0
    heat_ax.imshow(_pool(values, COLUMNS).T, aspect="auto", interpolation="nearest", cmap=_cmap(data), vmin=0, vmax=5,
                   extent=(t0, t1, len(aus) - 0.5, -0.5))  # fmt: skip
    heat_ax.set_yticks(range(len(aus)), aus, fontsize=6.5)
    heat_ax.set_xlim(0, end_s)
    for event in data["events"]:
        colour = _MICRO if event["kind"] == "micro" else _MACRO
        heat_ax.axvspan(event["onset"] / 1000, max(event["offset"] / 1000, event["onset"] / 1000 + end_s / 800), ymin=0, ymax=1,
                        facecolor=colour, alpha=0.16, edgecolor=colour, linewidth=0.8)  # fmt: skip
    heat_ax.tick_params(labelbottom=False, length=2)
    ribbon, windows = data["ribbon"], data["windows"]
    codes = unpacked(ribbon["codes"])
    labels = ribbon["labels"]
    pooled = _pool_labels(codes, len(labels), COLUMNS)
    colours = ListedColormap(ribbon["colours"] or ["#dedede"])
    w0, w1 = windows["t0"] / 1000.0, (windows["t0"] + windows["n"] * windows["step"]) / 1000.0
    ribbon_ax.imshow(pooled[None, :], aspect="auto", interpolation="nearest", cmap=colours, vmin=-0.5,
                     vmax=max(len(labels), 1) - 0.5, extent=(w0, w1, 0, 1))  # fmt: skip
    ribbon_ax.set_xlim(0, end_s)
    ribbon_ax.set_yticks([0.5], ["emotion"], fontsize=6.5)
    ribbon_ax.xaxis.set_major_formatter(FuncFormatter(_clock))
    ribbon_ax.tick_params(labelsize=7, length=2)


def _new(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def timeline_figure(data: dict[str, Any]) -> Figure:
    """The whole video's AU heat map, emotion ribbon and event bands (12 x 4.2 in)."""
    fig = _new(12.0, 4.2)
    heat_ax, ribbon_ax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [12, 1]})
    draw_timeline(heat_ax, ribbon_ax, data)
    _legend(fig, data)
    return fig


def _legend(fig: Figure, data: dict[str, Any]) -> None:
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=c, edgecolor="#999", label=name) for name, c in zip(
        data["ribbon"]["labels"], data["ribbon"]["colours"], strict=False)]  # fmt: skip
    handles += [
        Patch(facecolor=_MICRO, alpha=0.4, label="micro event"),
        Patch(facecolor=_MACRO, alpha=0.4, label="macro event"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 7), fontsize=7, frameon=False)


def au_figure(data: dict[str, Any]) -> Figure:
    """Each AU's time course over the whole video (the heat map's rows as lines, 0-5), with the
    person's own left (blue) and right (orange) side for the one-sided AUs (window peaks)."""
    from matplotlib.ticker import FuncFormatter

    aus, heat, windows = data["aus"], data["heat"], data["windows"]
    values = _pool(decode(heat["data"], len(aus)), COLUMNS)
    times = heat["t0"] / 1000.0 + (np.arange(len(values)) + 0.5) * (heat["n"] * heat["step"] / 1000.0) / max(
        len(values), 1
    )
    sided = data["sided"]["aus"]
    left = _pool(decode(data["sided"]["left"], len(sided)), COLUMNS) if sided else None
    right = _pool(decode(data["sided"]["right"], len(sided)), COLUMNS) if sided else None
    wtimes = windows["t0"] / 1000.0 + (np.arange(len(left)) + 0.5) * (windows["n"] * windows["step"] / 1000.0) / max(
        len(left), 1) if left is not None else None  # fmt: skip
    fig = _new(12.0, 0.55 * len(aus) + 0.6)
    axes = fig.subplots(len(aus), 1, sharex=True, sharey=True)
    for row, (ax, au) in enumerate(zip(np.atleast_1d(axes), aus, strict=False)):
        if au in sided and left is not None and right is not None:
            k = sided.index(au)
            ax.plot(wtimes, left[:, k], color=_MICRO, linewidth=0.6, alpha=0.8)
            ax.plot(wtimes, right[:, k], color="#e67800", linewidth=0.6, alpha=0.8)
        ax.plot(times, values[:, row], color="#222", linewidth=0.7)
        ax.set_ylim(0, 5)
        ax.set_yticks([])
        ax.set_ylabel(au, rotation=0, ha="right", va="center", fontsize=7)
        ax.axhline(1.0, color="#ddd", linewidth=0.5, zorder=0)
        for spine in ("top", "right"):
            ax.spines[spine].set_visible(False)
    last = np.atleast_1d(axes)[-1]
    last.set_xlim(0, data["duration_ms"] / 1000.0)
    last.xaxis.set_major_formatter(FuncFormatter(_clock))
    last.tick_params(labelsize=7)
    return fig


def _picture(uri: str) -> np.ndarray:
    import cv2

    raw = np.frombuffer(base64.b64decode(uri.split(",", 1)[1]), dtype=np.uint8)
    return cv2.cvtColor(cv2.imdecode(raw, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _caption(card: dict[str, Any]) -> str:
    aus = " ".join(f"{a['au']}+{a['rise']:.1f}" for a in card["aus"] if a["own"] and np.isfinite(a["rise"]))
    label = card["emotion"] + (f" ({card['core']})" if card["core"] and card["core"] != card["emotion"] else "")
    confidence = f" · conf {card['confidence']:.2f}" if card["confidence"] is not None else ""
    return f"event {card['id']} · {card['kind']} · {_clock(card['apex_ms'] / 1000)}{confidence}\n{label}\n{aus}"


def summary_figure(data: dict[str, Any], cards: Sequence[dict[str, Any]], top: int = 4) -> Figure:
    """The timeline over the whole video and, below it, the ``top`` most confident events with
    stills (onset, apex with the AU regions, change), their AUs' rise and their label."""
    from matplotlib.ticker import FuncFormatter

    shown = sorted((c for c in cards if c["stills"]), key=lambda c: (-(c["confidence"] or 0.0), c["onset_ms"]))[:top]
    fig = _new(12.0, 4.4 + (2.0 if shown else 0.0))
    rows = fig.subfigures(2 if shown else 1, 1, height_ratios=[4.4, 2.0] if shown else None, squeeze=False)[:, 0]
    heat_ax, ribbon_ax = rows[0].subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [12, 1]})
    draw_timeline(heat_ax, ribbon_ax, data)
    for card in shown:
        heat_ax.annotate(str(card["id"]), (card["apex_ms"] / 1000, -0.5), xytext=(0, 2), textcoords="offset points",
                         ha="center", va="bottom", fontsize=7, color="#111", annotation_clip=False)  # fmt: skip
    ribbon_ax.xaxis.set_major_formatter(FuncFormatter(_clock))
    rows[0].suptitle(data.get("title", ""), fontsize=9, x=0.01, ha="left")
    _legend(rows[0], data)
    if shown:
        axes = np.atleast_1d(rows[1].subplots(1, max(len(shown), 2)))
        for ax in axes:
            ax.set_axis_off()
        for ax, card in zip(axes, shown, strict=False):
            pictures = [_picture(s["uri"]) for s in card["stills"] if s["title"] in ("onset", "apex", "change")]
            gap = np.full((pictures[0].shape[0], 4, 3), 255, np.uint8)
            ax.imshow(np.hstack([p for pic in pictures for p in (pic, gap)][:-1]))
            ax.set_title(_caption(card), fontsize=7, loc="left")
            ax.text(0.0, -0.03, "onset · apex (AU regions) · change", transform=ax.transAxes, fontsize=6, va="top",
                    color="#666")  # fmt: skip
    return fig


def png_bytes(fig: Figure, dpi: int = 130) -> bytes:
    """``fig`` as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    return buffer.getvalue()
