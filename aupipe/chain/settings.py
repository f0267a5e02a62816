"""Settings of the whole chain: one frozen dataclass per stage, gathered in ``PipelineSettings``."""

from __future__ import annotations

from dataclasses import dataclass, field

from aupipe.events import interaction, spotting
from aupipe.signal import aus, landmarks, normalize, tracking, video, windows

__all__ = ["ParallelSettings", "PipelineSettings"]


@dataclass(frozen=True)
class ParallelSettings:
    """How a video is cut for ``workers`` > 1 processes (``aupipe.chain.parallel``); no effect on one.

    max_span_s: longest span a worker takes at once (s); more spans balance the load better but
        repeat more warm-up frames. min_span_s: shorter videos are not split below this (s).
    overlap_s: warm-up before each span's first frame (s), processed and dropped.
    lookahead: spans queued per worker (bounds memory: each finished span waits as a table).
    send_frames: a worker sends its frame rows in chunks of at least this many frames.
    """

    max_span_s: float = 120.0
    min_span_s: float = 10.0
    overlap_s: float = 1.0
    lookahead: int = 2
    send_frames: int = 256


@dataclass(frozen=True)
class PipelineSettings:
    """Settings of every stage; ``chunk_frames`` frames are processed together (vectorised).
    ``landmarks.num_faces`` > 1 follows several faces (``tracking``, docs/faces.md)."""

    video: video.VideoSettings = field(default_factory=video.VideoSettings)
    landmarks: landmarks.LandmarkSettings = field(default_factory=landmarks.LandmarkSettings)
    normalize: normalize.NormalizeSettings = field(default_factory=normalize.NormalizeSettings)
    aus: aus.AuSettings = field(default_factory=aus.AuSettings)
    windows: windows.WindowSettings = field(default_factory=windows.WindowSettings)
    spotting: spotting.SpottingSettings | None = field(default_factory=spotting.SpottingSettings)  # None: off
    chunk_frames: int = 64
    include_landmarks: bool = True
    include_descriptor: bool = False  # the face descriptor as desc_0000... columns (fitting a calibration)
    au_backend: str = "mediapipe"
    parallel: ParallelSettings = field(default_factory=ParallelSettings)
    tracking: tracking.TrackSettings = field(default_factory=tracking.TrackSettings)
    interaction: interaction.InteractionSettings = field(default_factory=interaction.InteractionSettings)

    @property
    def several_faces(self) -> bool:
        """Whether faces are tracked (``landmarks.num_faces`` > 1)."""
        return self.landmarks.num_faces > 1
