"""``analyze``: the whole chain on one video, collected into DataFrames in memory."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from aupipe.chain.faces import insert_face_id
from aupipe.chain.frames import frame_table_empty
from aupipe.chain.settings import PipelineSettings
from aupipe.chain.stream import StreamState, stream
from aupipe.events import interaction, spotting, summary
from aupipe.errors import InputError
from aupipe.rules import mapping
from aupipe.running import faces
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
    Every table has ``face_id`` (all 0 with one face); ``face(i)`` is face i's result alone,
    ``face_ids`` the faces found; ``baseline`` is the first face's, ``baselines`` every face's;
    ``interaction``: synchrony and mimicry between faces (``aupipe.events.interaction``).
    """

    frames: pd.DataFrame
    windows: pd.DataFrame
    baseline: aus.Baseline | None
    video: video.VideoInfo
    mapping_name: str
    events: pd.DataFrame = field(default_factory=spotting.empty_events)
    summary: pd.DataFrame = field(default_factory=lambda: summary.table(summary.SummaryState()))
    baselines: dict[int, aus.Baseline] = field(default_factory=dict)
    interaction: pd.DataFrame = field(default_factory=interaction.empty_interaction)  # between faces

    @property
    def face_ids(self) -> list[int]:
        """The ids of the faces in the tables, in order."""
        return sorted({int(i) for i in self.frames["face_id"].unique()}) if "face_id" in self.frames else [0]

    def face(self, face_id: int) -> AnalysisResult:
        """Face ``face_id``'s rows of every table (``face_id`` column kept), with its baseline."""
        if face_id not in self.face_ids:
            raise InputError(f"no face {face_id} in this result; its faces are {self.face_ids}")

        def rows(table: pd.DataFrame) -> pd.DataFrame:
            if "face_id" not in table:
                return table
            return table.loc[table["face_id"].to_numpy() == face_id].reset_index(drop=True)

        return dataclasses.replace(
            self, frames=rows(self.frames), windows=rows(self.windows), events=rows(self.events),
            summary=rows(self.summary), baseline=self.baselines.get(face_id),
            baselines={face_id: self.baselines[face_id]} if face_id in self.baselines else {},
        )  # fmt: skip


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
    event_parts: list[pd.DataFrame] = [insert_face_id(spotting.empty_events(emotion_map), 0, after="event")]
    between_parts: list[pd.DataFrame] = [interaction.empty_interaction()]
    last_state = StreamState()
    for chunk, last_state in stream(path, emotion_map, settings, progress, baseline, workers):  # noqa: B007
        if len(chunk.frames):
            frame_parts.append(chunk.frames)
        window_parts.append(chunk.windows)
        event_parts.append(chunk.events)
        between_parts.append(chunk.interaction)
    frames = (
        pd.concat(frame_parts, ignore_index=True) if frame_parts
        else insert_face_id(frame_table_empty(settings), 0, after="frame")
    )  # fmt: skip
    window_table = pd.concat([w for w in window_parts if len(w)] or window_parts[-1:], ignore_index=True)
    window_table = window_table.sort_values(["face_id", "window"], kind="stable").reset_index(drop=True)
    frames = frames.sort_values(["frame", "face_id"], kind="stable").reset_index(drop=True)
    window_table = faces.predict_faces(predictor, {}, frames, window_table, rule_weight)
    events = pd.concat([e for e in event_parts if len(e)] or event_parts[:1], ignore_index=True)
    if settings.spotting is not None:
        flagged = [
            spotting.flag_windows(rows, events.loc[events["face_id"].to_numpy() == face_id]).to_numpy()
            for face_id, rows in faces.by_face(window_table).items()
        ]  # by_face keeps each face's rows in order, and the table is sorted by face
        window_table["in_event"] = np.concatenate(flagged) if flagged else np.zeros(0, bool)
    window_table = window_table.sort_values(["start_ms", "face_id"], kind="stable").reset_index(drop=True)
    summary_settings = summary.SummarySettings.for_mapping(emotion_map)
    states = faces.summary_faces({}, window_table, events, summary_settings)
    clip_summary = faces.summary_table(states, summary_settings)
    baselines = last_state.baselines()
    first_baseline = baselines[min(baselines)] if baselines else None
    between = pd.concat([b for b in between_parts if len(b)] or between_parts[:1], ignore_index=True)
    return AnalysisResult(
        frames, window_table, first_baseline, info, emotion_map.name, events, clip_summary, baselines, between
    )
