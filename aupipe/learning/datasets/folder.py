"""Your own labelled clips: a folder of ``LABEL/`` sub-folders, or a CSV file ``path,label,subject``.

Folder layout (labels are the sub-folder names, sorted):

- ``ROOT/LABEL/SUBJECT/clip.mp4``: the subject is the folder between label and clip;
- ``ROOT/LABEL/clip.mp4``: the subject is the file name up to its first ``_`` or ``-``
  (``s07_take2.mp4`` -> ``s07``), so name clips ``SUBJECT_anything.ext``.

CSV layout: a header with ``path`` and ``label`` and (recommended) ``subject``; paths relative to
the CSV's folder; other columns become clip metadata (per-group reports). Without ``subject``
every clip is its own subject, which keeps the windows of one clip together but is not a
speaker-independent evaluation.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from aupipe.errors import InputError
from aupipe.learning.datasets.base import VIDEO_SUFFIXES, Clip, Dataset, is_video

__all__ = ["load_csv", "load_folder", "subject_from_name"]

_SUBJECT_RE = re.compile(r"^([^_\-]+)")


def subject_from_name(stem: str) -> str:
    """The subject of a clip named ``SUBJECT_rest`` or ``SUBJECT-rest`` (the whole stem otherwise)."""
    match = _SUBJECT_RE.match(stem)
    return match.group(1) if match else stem


def load_folder(root: str | Path) -> Dataset:
    """Read ``ROOT/LABEL/[SUBJECT/]clip.ext``; InputError when no labelled clip is found."""
    root = Path(root)
    clips: list[Clip] = []
    skipped: dict[str, str] = {}
    try:
        label_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as err:
        raise InputError(f"{root}: cannot list the dataset folder ({err.strerror or err})") from err
    for label_dir in label_dirs:
        for path in sorted(label_dir.rglob("*")):
            if not path.is_file():
                continue
            if path.suffix.lower() not in VIDEO_SUFFIXES:
                skipped[str(path)] = "not a video file"
                continue
            relative = path.relative_to(label_dir)
            if len(relative.parts) == 1:
                subject = subject_from_name(path.stem)
            elif len(relative.parts) == 2:
                subject = relative.parts[0]
            else:
                skipped[str(path)] = "too deep; use LABEL/clip.ext or LABEL/SUBJECT/clip.ext"
                continue
            clip_id = path.relative_to(root).with_suffix("").as_posix()
            clips.append(Clip(path=path, label=label_dir.name, subject=subject, clip_id=clip_id))
    if not clips:
        raise InputError(
            f"{root}: no labelled clip found; expected LABEL/clip.mp4 sub-folders, a CREMA-D folder or a CSV file"
        )
    labels = tuple(sorted({c.label for c in clips}))
    return Dataset(name="folder", root=root, clips=tuple(clips), labels=labels, skipped=skipped)


def load_csv(path: str | Path) -> Dataset:
    """Read a CSV of ``path,label[,subject,...]`` (paths relative to the CSV); missing files are skipped."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            fields = [f.strip() for f in (reader.fieldnames or [])]
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise InputError(f"{path}: cannot read the dataset CSV ({err})") from err
    if "path" not in fields or "label" not in fields:
        raise InputError(f"{path}: the dataset CSV needs a header with columns path,label (and subject); got {fields}")
    clips: list[Clip] = []
    skipped: dict[str, str] = {}
    seen: set[str] = set()
    for number, row in enumerate(rows, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        clip_path = Path(row["path"])
        if not clip_path.is_absolute():
            clip_path = path.parent / clip_path
        label = row["label"]
        if not row["path"] or not label:
            skipped[f"{path}:{number}"] = "empty path or label"
            continue
        if not is_video(clip_path):
            skipped[str(clip_path)] = "file not found or not a video"
            continue
        clip_id = row["path"].rsplit(".", 1)[0]
        if clip_id in seen:
            skipped[str(clip_path)] = f"listed twice (line {number})"
            continue
        seen.add(clip_id)
        subject = row.get("subject") or clip_id
        meta = {k: v for k, v in row.items() if k not in {"path", "label", "subject"} and k}
        clips.append(Clip(path=clip_path, label=label, subject=subject, clip_id=clip_id, meta=meta))
    if not clips:
        raise InputError(f"{path}: no usable clip in the dataset CSV ({len(skipped)} rows skipped)")
    labels = tuple(sorted({c.label for c in clips}))
    return Dataset(name="csv", root=path.parent, clips=tuple(clips), labels=labels, skipped=skipped)
