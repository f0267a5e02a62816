"""The stage chain: raw frame rows -> AUs -> speech -> windows -> emotions (and events), streamed.

``advance`` pushes one chunk of raw frame rows through every stage and returns the finished
frame rows, labelled windows and events with the new state; ``stream`` does it for a whole
video. Pure: the state passed in is never changed, so an interrupted caller can always flush
from the last state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aupipe.chain.frames import frame_table_empty, frame_table_empty_cached, order_columns, stream_frames
from aupipe.chain.parallel import raw_frames
from aupipe.chain.settings import PipelineSettings
from aupipe.errors import SettingsError
from aupipe.events import spotting
from aupipe.rules import mapping, scoring
from aupipe.signal import aus, speech, windows

__all__ = [
    "Chunk", "StreamState", "advance", "frames_of", "initial_state", "label_windows", "mapping_input", "neutral_baseline", "stream",
    "window_table_empty",
]  # fmt: skip


@dataclass(frozen=True)
class Chunk:
    """One step of the stream: its frame rows and the windows completed by it."""

    frames: pd.DataFrame
    windows: pd.DataFrame
    events: pd.DataFrame = field(default_factory=spotting.empty_events)  # expression events finished by it


def mapping_input(window_table: pd.DataFrame) -> pd.DataFrame:
    """What the mapping scores: each AU's window peak, named ``AU12``, ``AU12_left``..., and the
    window's evidence columns (``speaking``, ``face_coverage``, ``head_turn_deg``,
    ``baseline_confidence``) where the table has them."""
    peaks = [c for c in window_table.columns if c.startswith("AU") and c.endswith("_peak")]
    evidence = [c for c in scoring.EVIDENCE_COLUMNS if c in window_table.columns]
    return window_table[peaks + evidence].rename(columns=lambda c: c.removesuffix("_peak"))


def label_windows(window_table: pd.DataFrame, emotion_map: mapping.Mapping) -> pd.DataFrame:
    """Window table plus the mapping's scores, winner, core emotion and explanation."""
    if window_table.empty:
        scores = mapping.score(pd.DataFrame(columns=list(aus.AU_NAMES), dtype=float), emotion_map)
        return pd.concat([window_table, scores], axis=1)
    scores = mapping.score(mapping_input(window_table), emotion_map)
    return pd.concat([window_table.reset_index(drop=True), scores.reset_index(drop=True)], axis=1)


@dataclass(frozen=True)
class StreamState:
    """The stages' carried state between chunks: AU stage (baseline, filter) and windows."""

    au: aus.AuState = field(default_factory=aus.AuState)
    windows: windows.WindowState = field(default_factory=windows.WindowState)
    external_aus: pd.DataFrame | None = None  # per-frame AUs of an external backend (py-feat)
    spotting: spotting.SpottingState = field(default_factory=spotting.SpottingState)  # a bounded tail of frames
    speech: speech.SpeechState = field(default_factory=speech.SpeechState)  # ~1 s of look-ahead for ``speaking``


def initial_state(path: str | Path, settings: PipelineSettings = PipelineSettings()) -> StreamState:
    """The state a stream starts from; with ``au_backend="pyfeat"`` py-feat's AUs are computed first."""
    if settings.au_backend == "pyfeat":
        from aupipe.signal.pyfeat_backend import detect_aus

        return StreamState(external_aus=detect_aus(path))
    if settings.au_backend != "mediapipe":
        raise SettingsError(f"unknown AU backend {settings.au_backend!r}; use mediapipe or pyfeat")
    return StreamState()


def advance(
    state: StreamState,
    raw: pd.DataFrame | None,
    emotion_map: mapping.Mapping,
    settings: PipelineSettings = PipelineSettings(),
    final: bool = False,
    baseline: aus.Baseline | None = None,
) -> tuple[Chunk, StreamState]:
    """Push raw frame rows through AUs -> windows -> emotions; ``final`` flushes every stage.

    Returns the finished frame rows and labelled windows, and the new state. Pure: the state
    passed in is not changed, so an interrupted caller can always flush from the last state.
    """
    rows, au_state = aus.step(state.au, raw, settings.aus, final=final, baseline=baseline)
    rows, speech_state = speech.step(state.speech, rows if len(rows) else None, final=final)
    rows = order_columns(rows) if len(rows) else frame_table_empty_cached(settings).iloc[0:0]
    if settings.au_backend == "pyfeat" and len(rows):
        rows = _pyfeat_aus(rows, state)
    done, window_state = windows.step(state.windows, rows if len(rows) else None, settings.windows, final=final)
    confidence = au_state.baseline.confidence if au_state.baseline is not None else np.nan
    done = done.assign(baseline_confidence=np.full(len(done), confidence))
    events, spot_state = spotting.empty_events(emotion_map), state.spotting
    if settings.spotting is not None:
        events, spot_state = spotting.step(
            state.spotting, rows if len(rows) else None, settings.spotting, final=final, emotion_map=emotion_map
        )
    new_state = StreamState(au_state, window_state, state.external_aus, spot_state, speech_state)
    return Chunk(rows, label_windows(done, emotion_map), events), new_state


def _pyfeat_aus(rows: pd.DataFrame, state: StreamState) -> pd.DataFrame:
    """Replace the AU columns of ``rows`` by py-feat's (matched on ``frame``)."""
    if state.external_aus is None:
        return rows
    external = state.external_aus.set_index("frame").reindex(rows["frame"].to_numpy())
    for column in external.columns:
        if column in rows:
            rows[column] = external[column].to_numpy()
    return rows


def stream(
    path: str | Path,
    emotion_map: mapping.Mapping,
    settings: PipelineSettings = PipelineSettings(),
    progress: bool = False,
    baseline: aus.Baseline | None = None,
    workers: int | None = 1,
) -> Iterator[tuple[Chunk, StreamState]]:
    """Yield each step's finished frame rows and the windows they complete, with the state after it.

    The last item flushes the stages (rows held for the baseline and the filter, the windows
    that end with the video). ``workers`` as for ``raw_frames``.
    """
    state = initial_state(path, settings)
    for raw in raw_frames(path, settings, progress, workers):
        chunk, state = advance(state, raw, emotion_map, settings, baseline=baseline)
        yield chunk, state
    chunk, state = advance(state, None, emotion_map, settings, final=True, baseline=baseline)
    yield chunk, state


def window_table_empty(
    emotion_map: mapping.Mapping, settings: PipelineSettings = PipelineSettings(), predictor: Any = None,
    rule_weight: float | None = None,
) -> pd.DataFrame:  # fmt: skip
    """A window table with all columns (model and ``in_event`` ones where they apply) and no rows."""
    empty_frames = frame_table_empty(settings)
    bare = windows.compute_windows(empty_frames)
    empty_windows = label_windows(bare.assign(baseline_confidence=pd.Series(dtype=float)), emotion_map)
    if predictor is not None:
        empty_windows = predictor.predict_windows(empty_frames, empty_windows, rule_weight)
    if settings.spotting is not None:
        empty_windows = empty_windows.assign(in_event=pd.Series(dtype=bool))
    counts = {"window": "int64", "start_frame": "int64", "end_frame": "int64", "n_frames": "int64"}
    times = {"start_ms": "float64", "end_ms": "float64", "face_coverage": "float64"}
    return empty_windows.astype({k: v for k, v in {**counts, **times}.items() if k in empty_windows.columns})


def neutral_baseline(path: str | Path, settings: PipelineSettings = PipelineSettings()) -> aus.Baseline:
    """A baseline from a separate neutral clip or image folder: every face frame counts as neutral."""
    raw = pd.concat(list(stream_frames(path, settings)), ignore_index=True)
    blendshape_au, measures, blendshapes = aus.signals(raw, settings.aus)
    neutral_settings = dataclasses.replace(settings.aus, neutral_range_s=None)
    return aus.estimate_baseline(
        blendshape_au,
        measures,
        raw["time_ms"].to_numpy(),
        neutral_settings,
        source=f"neutral clip {path}",
        blendshapes=blendshapes,
        given=True,
    )


def frames_of(
    path: str | Path, settings: PipelineSettings = PipelineSettings(), baseline: aus.Baseline | None = None
) -> pd.DataFrame:
    """The whole frame table of ``path`` in memory (every stage's frame columns; the emotion
    mapping does not change them, so the default one labels the windows, which are dropped)."""
    parts = [chunk.frames for chunk, _ in stream(path, mapping.load_mapping(), settings, baseline=baseline)]
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else frame_table_empty(settings)
