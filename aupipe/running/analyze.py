"""``analyze``: the whole chain on one video, collected into DataFrames in memory."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from aupipe.chain.frames import frame_table_empty
from aupipe.chain.settings import PipelineSettings
from aupipe.chain.stream import StreamState, stream
from aupipe.events import spotting, summary
from aupipe.rules import mapping
from aupipe.running.run import load_predictor
from aupipe.signal import aus, video

__all__ = ["AnalysisResult", "analyze"]


@dataclass(frozen=True)
class AnalysisResult:
    """Result of ``aupipe.analyze``: per-frame and per-window DataFrames plus context.

    frames: one row per decoded frame (docs/outputs.md); windows: one row per window;
    baseline: the person's neutral baseline used for the AUs (``baseline.table()`` as a
    DataFrame; None when no frame was processed); video: the container's header;
    mapping_name: which emotion mapping labelled the windows; events: the spotted events;
    summary: the dominant emotions of the clip and of each minute (``aupipe.events.summary``).
    """

    frames: pd.DataFrame
    windows: pd.DataFrame
    baseline: aus.Baseline | None
    video: video.VideoInfo
    mapping_name: str
    events: pd.DataFrame = field(default_factory=spotting.empty_events)
    summary: pd.DataFrame = field(default_factory=lambda: summary.table(summary.SummaryState()))


def analyze(
    path: str | Path,
    emotion_map: mapping.Mapping | None = None,
    settings: PipelineSettings = PipelineSettings(),
    progress: bool = False,
    baseline: aus.Baseline | None = None,
    model: str | Path | None = None,
    rule_weight: float | None = None,
    workers: int | None = 1,
) -> AnalysisResult:
    """Run the whole pipeline on ``path`` and return the frame and window tables in memory
    (``workers`` as for ``raw_frames``)."""
    emotion_map = emotion_map or mapping.load_mapping()
    info = video.probe(path, settings.video)
    predictor = load_predictor(model, emotion_map, settings)
    frame_parts: list[pd.DataFrame] = []
    window_parts: list[pd.DataFrame] = []
    event_parts: list[pd.DataFrame] = [spotting.empty_events(emotion_map)]
    last_state = StreamState()
    for chunk, last_state in stream(path, emotion_map, settings, progress, baseline, workers):  # noqa: B007
        if len(chunk.frames):
            frame_parts.append(chunk.frames)
        window_parts.append(chunk.windows)
        event_parts.append(chunk.events)
    frames = pd.concat(frame_parts, ignore_index=True) if frame_parts else frame_table_empty(settings)
    window_table = pd.concat([w for w in window_parts if len(w)] or window_parts[-1:], ignore_index=True)
    if predictor is not None:
        window_table = predictor.predict_windows(frames, window_table, rule_weight)
    events = pd.concat([e for e in event_parts if len(e)] or event_parts[:1], ignore_index=True)
    if settings.spotting is not None:
        window_table["in_event"] = spotting.flag_windows(window_table, events).to_numpy()
    clip_summary = summary.summarize(window_table, events, summary.SummarySettings.for_mapping(emotion_map))
    return AnalysisResult(frames, window_table, last_state.au.baseline, info, emotion_map.name, events, clip_summary)
