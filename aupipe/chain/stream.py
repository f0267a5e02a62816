"""The stage chain: raw frame rows -> AUs -> speech -> windows -> emotions (and events), streamed.

``advance`` pushes one chunk of raw frame rows through every stage and returns the finished
frame rows, labelled windows and events with the new state; ``stream`` does it for a whole
video. Pure: the state passed in is never changed, so an interrupted caller can always flush
from the last state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from collections.abc import Mapping as MappingOf
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from aupipe.chain.faces import insert_face_id, step_faces, track
from aupipe.chain.frames import frame_table_empty, stream_frames
from aupipe.chain.parallel import raw_frames
from aupipe.chain.labels import label_windows, mapping_input
from aupipe.chain.settings import PipelineSettings
from aupipe.chain.stages import Chain, build_chain
from aupipe.errors import SettingsError
from aupipe.events import interaction, spotting
from aupipe.rules import mapping
from aupipe.signal import aus, tracking, windows

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
    interaction: pd.DataFrame = field(default_factory=interaction.empty_interaction)  # between faces, final ones
    early_frames: pd.DataFrame | None = None  # rows with final AUs, before the speech stage (Chain.step_early)


@dataclass(frozen=True)
class StreamState:
    """Every face's stage states between chunks (face id -> stage name -> state, see
    ``aupipe.chain.stages``), the face tracker's state, and the per-frame AUs of an external
    backend (py-feat) when one is used. ``au``, ``windows`` and ``spotting`` are face 0's (the
    only face of a one-face run); ``face(i)`` gives face i's stage states."""

    faces: MappingOf[int, MappingOf[str, Any]] = field(default_factory=dict)
    external_aus: pd.DataFrame | None = None  # per-frame AUs of an external backend (py-feat)
    tracker: tracking.TrackState = field(default_factory=tracking.TrackState)
    interaction: interaction.InteractionState = field(default_factory=interaction.InteractionState)

    def face(self, face_id: int) -> MappingOf[str, Any]:
        """Face ``face_id``'s stage states (empty before its first row)."""
        return self.faces.get(face_id, {})

    @property
    def stages(self) -> MappingOf[str, Any]:
        """The first face's stage states."""
        return self.faces[min(self.faces)] if self.faces else {}

    @property
    def au(self) -> aus.AuState:
        """The AU stage's state (baseline, filter context)."""
        return self.stages.get("aus", aus.AuState())

    @property
    def windows(self) -> windows.WindowState:
        """The window stage's state (frames still needed)."""
        return self.stages.get("windows", windows.WindowState())

    @property
    def spotting(self) -> spotting.SpottingState:
        """The event stage's state (a bounded tail of frames)."""
        return self.stages.get("spotting", spotting.SpottingState())

    def baselines(self) -> dict[int, aus.Baseline]:
        """Each face's neutral baseline, where one is known."""
        out = {}
        for face_id, stages in self.faces.items():
            state = stages.get("aus")
            if state is not None and state.baseline is not None:
                out[face_id] = state.baseline
        return out


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
    chain: Chain | None = None,
    hold: bool = False,
) -> tuple[Chunk, StreamState]:
    """Push raw frame rows through the chain (``stages.build_chain``: AUs -> speech -> windows ->
    emotions, and events); ``final`` flushes every stage.

    Returns the finished frame rows, labelled windows and events, and the new state. Pure: the
    state passed in is not changed, so an interrupted caller can always flush from the last
    state. ``chain`` replaces the default wiring (e.g. another AU backend's stage). ``hold``:
    only the AU stage runs now (``Chunk.early_frames``), the rest on a later call (``Chain.step_early``).
    """
    chain = chain or build_chain(settings, emotion_map, baseline, state.external_aus)
    tracked, tracker = track(state.tracker, raw, settings, final)
    rows, window_rows, events, new, early = step_faces(chain, state.faces, tracked, final, settings.several_faces, hold)
    between, between_state = interaction.empty_interaction(), state.interaction
    if settings.several_faces and (final or len(rows)):
        between, between_state = interaction.step(
            between_state, rows if len(rows) else None, settings.interaction, final=final
        )
    return Chunk(rows, window_rows, events, between, early), StreamState(
        new, state.external_aus, tracker, between_state
    )


def stream(
    path: str | Path,
    emotion_map: mapping.Mapping,
    settings: PipelineSettings = PipelineSettings(),
    progress: bool = False,
    baseline: aus.Baseline | None = None,
    workers: int | None = 1,
    chain: Chain | None = None,
) -> Iterator[tuple[Chunk, StreamState]]:
    """Yield each step's finished frame rows and the windows they complete, with the state after it.

    The last item flushes the stages (rows held for the baseline and the filter, the windows
    that end with the video). ``workers`` as for ``raw_frames``; ``chain`` replaces the default
    wiring (``stages.build_chain``).
    """
    state = initial_state(path, settings)
    chain = chain or build_chain(settings, emotion_map, baseline, state.external_aus)
    for raw in raw_frames(path, settings, progress, workers):
        chunk, state = advance(state, raw, emotion_map, settings, baseline=baseline, chain=chain)
        yield chunk, state
    chunk, state = advance(state, None, emotion_map, settings, final=True, baseline=baseline, chain=chain)
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
    empty_windows = empty_windows.astype({k: v for k, v in {**counts, **times}.items() if k in empty_windows.columns})
    return insert_face_id(empty_windows, 0, after="window")


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
