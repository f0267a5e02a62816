"""The Stage contract and the one chain builder.

A stage is a frozen object with a ``name``, ``start()`` (its first state, from its settings) and
``step(state, rows, final)``: it takes the next chunk of frame rows (``None`` when there are
none this time), returns its output and its new state, and with ``final`` flushes what it holds.
Stages are pure: the state passed in is never changed.

``build_chain`` wires the stages every source uses (a file, the parallel workers' frame tables,
a live camera, each face of several): frame stages turn raw frame rows (landmark stage
columns, ``aupipe.chain.frames``) into finished frame rows (AUs, speaking); then the window
stage and the event stage each read those rows. An AU backend plugs in as one more frame
stage (``PyFeatAuStage`` replaces the AU columns by py-feat's); pass your own with
``frame_stages``, nothing else changes.
"""

from __future__ import annotations

from collections.abc import Mapping as MappingOf
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from aupipe.chain.frames import frame_table_empty_cached, order_columns
from aupipe.chain.labels import label_windows
from aupipe.chain.settings import PipelineSettings
from aupipe.events import spotting
from aupipe.rules import mapping
from aupipe.signal import aus, speech, windows

__all__ = [
    "AuStage", "Chain", "ColumnOrderStage", "EventStage", "PyFeatAuStage", "SpeechStage", "Stage", "WindowStage",
    "build_chain", "default_frame_stages",
]  # fmt: skip


HELD = "held_rows"  # Chain state key: first-stage rows waiting for the later stages (step_early's hold)


def _some(rows: pd.DataFrame | None) -> pd.DataFrame | None:
    """``rows``, or None when there are none (what the signal stages' ``step`` expect)."""
    return rows if rows is not None and len(rows) else None


class Stage(Protocol):
    """What every stage provides (see the module doc)."""

    name: str

    def start(self) -> Any: ...

    def step(self, state: Any, rows: pd.DataFrame | None, final: bool) -> tuple[pd.DataFrame, Any]: ...


@dataclass(frozen=True)
class AuStage:
    """MediaPipe signals -> AU intensities (``aupipe.signal.aus``); holds frames until the
    person's baseline is known, and two frames for the temporal filter."""

    settings: aus.AuSettings = field(default_factory=aus.AuSettings)
    baseline: aus.Baseline | None = None
    name: str = "aus"

    def start(self) -> aus.AuState:
        return aus.AuState()

    def step(self, state: aus.AuState, rows: pd.DataFrame | None, final: bool) -> tuple[pd.DataFrame, aus.AuState]:
        return aus.step(state, rows, self.settings, final=final, baseline=self.baseline)


@dataclass(frozen=True)
class SpeechStage:
    """The per-frame ``speaking`` signal (``aupipe.signal.speech``); about 1 s of look-ahead."""

    name: str = "speech"

    def start(self) -> speech.SpeechState:
        return speech.SpeechState()

    def step(
        self, state: speech.SpeechState, rows: pd.DataFrame | None, final: bool
    ) -> tuple[pd.DataFrame, speech.SpeechState]:
        return speech.step(state, _some(rows), final=final)


@dataclass(frozen=True)
class ColumnOrderStage:
    """The frame table's documented column order (docs/outputs.md); no state."""

    settings: PipelineSettings = field(default_factory=PipelineSettings)
    name: str = "columns"

    def start(self) -> None:
        return None

    def step(self, state: None, rows: pd.DataFrame | None, final: bool) -> tuple[pd.DataFrame, None]:
        if rows is None or not len(rows):
            return frame_table_empty_cached(self.settings).iloc[0:0], None
        return order_columns(rows), None


@dataclass(frozen=True)
class PyFeatAuStage:
    """Replace the AU columns of each frame row by an external backend's (py-feat), matched on
    ``frame``; ``table`` holds its per-frame AUs for the whole video."""

    table: pd.DataFrame
    name: str = "external_aus"

    def start(self) -> None:
        return None

    def step(self, state: None, rows: pd.DataFrame | None, final: bool) -> tuple[pd.DataFrame, None]:
        if rows is None or not len(rows):
            return rows if rows is not None else pd.DataFrame(), None
        external = self.table.set_index("frame").reindex(rows["frame"].to_numpy())
        rows = rows.copy()
        for column in external.columns:
            if column in rows:
                rows[column] = external[column].to_numpy()
        return rows, None


@dataclass(frozen=True)
class WindowStage:
    """Finished frame rows -> windows (``aupipe.signal.windows``) labelled by the mapping."""

    settings: windows.WindowSettings
    emotion_map: mapping.Mapping
    name: str = "windows"

    def start(self) -> windows.WindowState:
        return windows.WindowState()

    def step(
        self, state: windows.WindowState, rows: pd.DataFrame | None, final: bool, baseline_confidence: float = np.nan
    ) -> tuple[pd.DataFrame, windows.WindowState]:
        done, new = windows.step(state, _some(rows), self.settings, final=final)
        done = done.assign(baseline_confidence=np.full(len(done), baseline_confidence))
        return label_windows(done, self.emotion_map), new


@dataclass(frozen=True)
class EventStage:
    """Finished frame rows -> expression events (``aupipe.events.spotting``), labelled."""

    settings: spotting.SpottingSettings
    emotion_map: mapping.Mapping
    name: str = "spotting"

    def start(self) -> spotting.SpottingState:
        return spotting.SpottingState()

    def step(
        self, state: spotting.SpottingState, rows: pd.DataFrame | None, final: bool
    ) -> tuple[pd.DataFrame, spotting.SpottingState]:
        return spotting.step(state, _some(rows), self.settings, final=final, emotion_map=self.emotion_map)


@dataclass(frozen=True)
class Chain:
    """Frame stages in order, then the window stage and (optionally) the event stage.

    ``start()`` gives every stage's first state, keyed by stage name; ``step(states, raw, final)``
    pushes raw frame rows through all of them and returns (finished frame rows, labelled
    windows, events, new states)."""

    frame_stages: tuple[Stage, ...]
    window_stage: WindowStage
    event_stage: EventStage | None
    emotion_map: mapping.Mapping

    def start(self) -> dict[str, Any]:
        stages = [*self.frame_stages, self.window_stage, *([self.event_stage] if self.event_stage else [])]
        return {stage.name: stage.start() for stage in stages}

    def step(
        self, states: MappingOf[str, Any], raw: pd.DataFrame | None, final: bool = False
    ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, Any]]:
        rows, window_rows, events, new, _ = self.step_early(states, raw, final)
        return rows, window_rows, events, new

    def step_early(
        self, states: MappingOf[str, Any], raw: pd.DataFrame | None, final: bool = False, hold: bool = False
    ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, Any], pd.DataFrame | None]:
        """``step``, and also the rows the first frame stage let out (the AU stage's: AUs final,
        before the speech stage's 1 s look-ahead; what ``aupipe live`` shows at once). With
        ``hold`` (and not ``final``) only the first stage runs: its rows wait in the state
        (``HELD``) for the next call without ``hold``, so the later stages run less often on
        bigger chunks; any such split gives the same rows, windows and events."""
        new = dict(states)
        first = self.frame_stages[0]
        early, new[first.name] = first.step(states[first.name], raw, final)
        held = states.get(HELD)
        waiting = [p for p in (held, early) if p is not None and len(p)]
        rows: pd.DataFrame | None = pd.concat(waiting, ignore_index=True) if len(waiting) > 1 else (
            waiting[0] if waiting else early
        )  # fmt: skip
        if hold and not final:
            new[HELD] = rows if rows is not None and len(rows) else None
            nothing = rows.iloc[0:0] if rows is not None else pd.DataFrame()
            return nothing, pd.DataFrame(), spotting.empty_events(self.emotion_map), new, early
        new.pop(HELD, None)  # the states hold stage states only, unless rows are held
        for stage in self.frame_stages[1:]:
            rows, new[stage.name] = stage.step(states[stage.name], rows, final)
        au_state = new.get("aus")
        confidence = au_state.baseline.confidence if au_state is not None and au_state.baseline is not None else np.nan
        window_rows, new[self.window_stage.name] = self.window_stage.step(
            states[self.window_stage.name], rows, final, baseline_confidence=confidence
        )
        events = spotting.empty_events(self.emotion_map)
        if self.event_stage is not None:
            events, new[self.event_stage.name] = self.event_stage.step(states[self.event_stage.name], rows, final)
        return rows, window_rows, events, new, early


def default_frame_stages(
    settings: PipelineSettings, baseline: aus.Baseline | None = None, external_aus: pd.DataFrame | None = None
) -> tuple[Stage, ...]:
    """AUs -> speaking -> column order, then py-feat's AUs when ``external_aus`` is given."""
    stages: list[Stage] = [AuStage(settings.aus, baseline), SpeechStage(), ColumnOrderStage(settings)]
    if external_aus is not None:
        stages.append(PyFeatAuStage(external_aus))
    return tuple(stages)


def build_chain(
    settings: PipelineSettings,
    emotion_map: mapping.Mapping,
    baseline: aus.Baseline | None = None,
    external_aus: pd.DataFrame | None = None,
    frame_stages: tuple[Stage, ...] | None = None,
) -> Chain:
    """The one wiring of the stages (module doc); ``frame_stages`` replaces the default ones."""
    stages = frame_stages if frame_stages is not None else default_frame_stages(settings, baseline, external_aus)
    events = EventStage(settings.spotting, emotion_map) if settings.spotting is not None else None
    return Chain(stages, WindowStage(settings.windows, emotion_map), events, emotion_map)
