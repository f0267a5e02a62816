"""The dataset model: a :class:`Dataset` is a list of :class:`Clip` (path, label, subject, metadata)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from aupipe.signal.video import VIDEO_SUFFIXES

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["VIDEO_SUFFIXES", "Clip", "Dataset", "is_video"]


@dataclass(frozen=True)
class Clip:
    """One labelled clip.

    clip_id: unique name within the dataset (file stem, e.g. ``1001_DFA_ANG_XX``); label: its
    class (e.g. ``ANG``); subject: the person (actor id), the unit of grouped evaluation;
    meta: extra text fields (sentence, level, sex, age ...) used for per-group reports.
    """

    path: Path
    label: str
    subject: str
    clip_id: str
    meta: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Dataset:
    """A labelled dataset.

    name: reader (``cremad``, ``folder``, ``csv``); labels: the class names in a fixed order;
    label_key: the key under which mapping categories name these labels (``labels: {cremad: SAD}``
    in a mapping YAML), or None; skipped: ``{path: reason}`` of files that were not taken.
    """

    name: str
    root: Path
    clips: tuple[Clip, ...]
    labels: tuple[str, ...]
    label_key: str | None = None
    skipped: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def subjects(self) -> tuple[str, ...]:
        """Distinct subjects, sorted."""
        return tuple(sorted({c.subject for c in self.clips}))

    def table(self) -> pd.DataFrame:
        """One row per clip: ``clip_id path label subject`` and the metadata fields."""
        import pandas as pd

        rows = [{"clip_id": c.clip_id, "path": str(c.path), "label": c.label, "subject": c.subject, **c.meta}
                for c in self.clips]  # fmt: skip
        return pd.DataFrame(rows, columns=None if rows else ["clip_id", "path", "label", "subject"])

    def __len__(self) -> int:
        return len(self.clips)


def is_video(path: Path) -> bool:
    """True for a regular file whose suffix is a known video suffix."""
    return path.suffix.lower() in VIDEO_SUFFIXES and path.is_file()
