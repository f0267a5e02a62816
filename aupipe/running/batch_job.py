"""A batch's job and folder layout: the settings every video shares, the per-video task, the summary, and where each output goes."""

from __future__ import annotations


import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from aupipe.rules import mapping as mapping_module
from aupipe.learning.features import file_sha256
from aupipe.io.writers import suffix_for
from aupipe.chain.settings import PipelineSettings


JOURNAL = ".aupipe-journal.jsonl"


MANIFEST = "manifest.csv"


DATASET = "windows.parquet"


MANIFEST_COLUMNS = [
    "video", "key", "status", "frames", "face_frames", "face_coverage", "windows", "events", "seconds",
    "frames_per_s", "error", "windows_file", "sha256", "settings_hash", "finished_at",
]  # fmt: skip


ENGINES = ("local", "ray")


STOP_MESSAGE = "aupipe: stopping after the videos in progress (Ctrl-C again to stop now)"


@dataclass(frozen=True)
class BatchJob:
    """What is done to every video: pipeline settings, mapping, optional model and which tables to write.

    output_format: "csv" or "parquet"; frames / events: also write those tables per video.
    events_format: "table" (the events in ``output_format``) or "eaf" (an ELAN file per video,
    ``<key>.events.eaf``, linked to the video: docs/outputs.md, "Events for ELAN and BORIS").
    """

    settings: PipelineSettings = field(default_factory=PipelineSettings)
    emotion_map: mapping_module.Mapping | None = None
    model: str | None = None
    rule_weight: float | None = None
    output_format: str = "csv"
    frames: bool = False
    events: bool = False
    events_format: str = "table"

    def settings_hash(self) -> str:
        """sha256 of everything that changes a video's outputs (not how many processes compute them)."""
        from aupipe.version import __version__

        settings = dataclasses.asdict(dataclasses.replace(self.settings, parallel=None))  # type: ignore[arg-type]
        model_hash = _folder_hash(self.model) if self.model else None
        blob = json.dumps(
            {
                "aupipe": __version__, "settings": settings, "model": model_hash, "rule_weight": self.rule_weight,
                "mapping": self.emotion_map.sha256 if self.emotion_map else None,
                "format": self.output_format, "frames": self.frames, "events": self.events,
                **({"events_format": self.events_format} if self.events_format != "table" else {}),
            },
            sort_keys=True, default=str,
        )  # fmt: skip
        return hashlib.sha256(blob.encode()).hexdigest()


def _folder_hash(folder: str | Path) -> str:
    """sha256 over a folder's files (names and contents): a model folder's identity."""
    digest = hashlib.sha256()
    root = Path(folder)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(root)}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class VideoTask:
    """One video of a batch: its path, output key, content hash, and the size and mtime it was hashed at."""

    video: str
    key: str
    sha256: str
    size: int = 0
    mtime_ns: int = 0


@dataclass(frozen=True)
class BatchSummary:
    """Result of ``run_batch``: the manifest (one row per video), where things were written, counts."""

    manifest: pd.DataFrame
    out_dir: Path
    manifest_path: Path
    dataset_path: Path | None
    n_processed: int
    n_skipped: int
    interrupted: bool

    @property
    def n_failed(self) -> int:
        return int((self.manifest["status"] == "error").sum()) if len(self.manifest) else 0


def output_keys(videos: Sequence[Path]) -> list[str]:
    """Output name stem of each video: its path below the videos' common folder, ``/`` as ``__``,
    without the suffix (with it where two videos would otherwise share a key)."""
    if not videos:
        return []
    resolved = [v.resolve() for v in videos]
    root = Path(os.path.commonpath([str(v.parent) for v in resolved]))
    relative = [v.relative_to(root) for v in resolved]
    keys = ["__".join(r.with_suffix("").parts) for r in relative]
    counts = pd.Series(keys).value_counts()
    return ["__".join(r.parts).replace(".", "_") if counts[k] > 1 else k for k, r in zip(keys, relative, strict=True)]


def output_paths(out_dir: Path, key: str, job: BatchJob) -> dict[str, Path]:
    """The files one video gets: windows always; frames and events when the job asks for them."""
    suffix = suffix_for(job.output_format)
    paths = {"windows": out_dir / f"{key}.windows{suffix}"}
    if job.frames:
        paths["frames"] = out_dir / f"{key}.frames{suffix}"
    if job.events:
        paths["events"] = out_dir / f"{key}.events{'.eaf' if job.events_format == 'eaf' else suffix}"
    return paths
