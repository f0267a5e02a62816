"""Labelled video datasets for training and evaluation: CREMA-D and a generic labelled folder.

A :class:`Dataset` is a list of :class:`Clip` (path, label, subject, metadata). The subject
(actor, speaker, participant) is what speaker-independent evaluation groups by: no subject is
ever in both the training and the test part of a split.

``load_dataset(source)`` picks the reader from what ``source`` is:

- a folder with ``VideoFlash/`` or with clips named like CREMA-D (``1001_DFA_ANG_XX.flv``):
  :func:`aupipe.learning.datasets.cremad.load_cremad`;
- a CSV file with columns ``path,label[,subject]``: :func:`aupipe.learning.datasets.folder.load_csv`;
- a folder of ``LABEL/clip.mp4`` sub-folders: :func:`aupipe.learning.datasets.folder.load_folder`;
- a list of clip paths named like CREMA-D: :func:`aupipe.learning.datasets.cremad.from_paths`.

Only the standard library and pandas are imported here (cheap).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aupipe.errors import InputError
from aupipe.learning.datasets import cremad, folder
from aupipe.learning.datasets.base import VIDEO_SUFFIXES, Clip, Dataset, is_video

__all__ = ["VIDEO_SUFFIXES", "Clip", "Dataset", "is_video", "load_dataset"]


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
