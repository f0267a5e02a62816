"""Labelled video datasets for training and evaluation: CREMA-D and a generic labelled folder.

A :class:`Dataset` is a list of :class:`Clip` (path, label, subject, metadata). The subject
(actor, speaker, participant) is what speaker-independent evaluation groups by: no subject is
ever in both the training and the test part of a split.

``load_dataset(source)`` picks the reader from what ``source`` is:

- a folder with ``VideoFlash/`` or with clips named like CREMA-D (``1001_DFA_ANG_XX.flv``):
  :func:`aupipe.datasets.cremad.load_cremad`;
- a CSV file with columns ``path,label[,subject]``: :func:`aupipe.datasets.folder.load_csv`;
- a folder of ``LABEL/clip.mp4`` sub-folders: :func:`aupipe.datasets.folder.load_folder`;
- a list of clip paths named like CREMA-D: :func:`aupipe.datasets.cremad.from_paths`.

Only the standard library and pandas are imported here (cheap).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["VIDEO_SUFFIXES", "Clip", "Dataset", "load_dataset"]

#: File name endings read as video clips.
VIDEO_SUFFIXES: tuple[str, ...] = (".flv", ".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")


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


def load_dataset(
    source: str | Path | Sequence[str | Path] | Dataset,
    *,
    label_source: str = "intended",
    metadata_dir: str | Path | None = None,
) -> Dataset:
    """Read a dataset from a folder, a CSV file or a list of CREMA-D clip paths (see module doc).

    label_source: for CREMA-D, ``intended`` (the emotion the actor was asked to show) or
    ``face_vote`` (the crowd's face-only vote). Raises InputError (one line) when ``source``
    holds no usable clip.
    """
    from . import cremad, folder

    if isinstance(source, Dataset):
        return source
    if not isinstance(source, (str, Path)):
        return cremad.from_paths([Path(p) for p in source], label_source=label_source, metadata_dir=metadata_dir)
    root = Path(source)
    if not root.exists():
        raise InputError(f"{root}: dataset not found; give a CREMA-D folder, a folder of LABEL/ sub-folders or a CSV")
    if root.is_file():
        if root.suffix.lower() == ".csv":
            return folder.load_csv(root)
        raise InputError(f"{root}: not a dataset; give a folder or a CSV file with columns path,label,subject")
    if cremad.looks_like_cremad(root):
        return cremad.load_cremad(root, label_source=label_source, metadata_dir=metadata_dir)
    if label_source != "intended":
        raise InputError(f"{root}: --label-source {label_source} is for CREMA-D only; this folder is not CREMA-D")
    return folder.load_folder(root)
