"""CREMA-D (Cao et al. 2014): 7,442 clips of 91 actors, six emotions, file names that carry the labels.

File names are ``Actor_Sentence_Emotion_Level`` (``1001_DFA_ANG_XX.flv``): actor 1001..1091,
one of 12 sentences, emotion ANG DIS FEA HAP NEU SAD, level LO MD HI or XX (unspecified).
Layout read: ``ROOT/VideoFlash/*.flv`` (the dataset's own layout) or the clips directly in
``ROOT``; optional ``ROOT/VideoDemographics.csv`` and ``ROOT/processedResults/summaryTable.csv``
(else the copies in the repository's ``data/cremad/`` are used).

Labels: ``intended`` (the emotion the actor was asked to portray, from the name) or
``face_vote`` (the crowd's majority vote on the video without sound, ``FaceVote`` of
summaryTable.csv; clips whose vote is a tie such as ``A:D`` are skipped and reported).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aupipe.errors import InputError
from aupipe.learning.datasets.base import Clip, Dataset, is_video

__all__ = [
    "EMOTIONS",
    "LABEL_SOURCES",
    "LEVELS",
    "SENTENCES",
    "CremadName",
    "from_paths",
    "load_cremad",
    "looks_like_cremad",
    "parse_name",
]

EMOTIONS: tuple[str, ...] = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
LEVELS: tuple[str, ...] = ("LO", "MD", "HI", "XX")
LABEL_SOURCES: tuple[str, ...] = ("intended", "face_vote")
SENTENCES: dict[str, str] = {
    "IEO": "It's eleven o'clock", "TIE": "That is exactly what happened", "IOM": "I'm on my way to the meeting",
    "IWW": "I wonder what this is about", "TAI": "The airplane is almost full",
    "MTI": "Maybe tomorrow it will be cold", "IWL": "I would like a new alarm clock",
    "ITH": "I think I have a doctor's appointment", "DFA": "Don't forget a jacket",
    "ITS": "I think I've seen this before", "TSI": "The surface is slick", "WSI": "We'll stop in a couple of minutes",
}  # fmt: skip
#: Letters of the crowd votes in summaryTable.csv -> emotion codes.
VOTE_CODES: dict[str, str] = {"A": "ANG", "D": "DIS", "F": "FEA", "H": "HAP", "N": "NEU", "S": "SAD"}
#: Demographic fields of VideoDemographics.csv joined to every clip's metadata.
DEMOGRAPHICS: tuple[str, ...] = ("Age", "Sex", "Race", "Ethnicity")

_NAME_RE = re.compile(r"^(?P<actor>\d{4})_(?P<sentence>[A-Z]{3})_(?P<emotion>[A-Z]{3})_(?P<level>[A-Z]{2})$")
_BUNDLED = Path(__file__).resolve().parents[3] / "data" / "cremad"


@dataclass(frozen=True)
class CremadName:
    """The parts of a CREMA-D file name: actor (``1001``), sentence (``DFA``), emotion, level."""

    actor: str
    sentence: str
    emotion: str
    level: str


def parse_name(name: str) -> CremadName:
    """Parse a CREMA-D file name or stem (``1001_DFA_ANG_XX[.flv]``); InputError when it is not one."""
    stem = Path(name).stem if Path(name).suffix.lower() in {".flv", ".mp4", ".wav", ".avi", ".mov"} else name
    match = _NAME_RE.match(stem)
    if not match or match["emotion"] not in EMOTIONS or match["level"] not in LEVELS:
        raise InputError(
            f"{name}: not a CREMA-D file name; expected ACTOR_SENTENCE_EMOTION_LEVEL such as 1001_DFA_ANG_XX "
            f"(emotions {' '.join(EMOTIONS)}, levels {' '.join(LEVELS)})"
        )
    return CremadName(match["actor"], match["sentence"], match["emotion"], match["level"])


def _is_cremad_name(stem: str) -> bool:
    try:
        parse_name(stem)
    except InputError:
        return False
    return True


def looks_like_cremad(root: Path) -> bool:
    """True when ``root`` has ``VideoFlash/`` or holds at least one clip named like CREMA-D."""
    if (root / "VideoFlash").is_dir():
        return True
    return any(is_video(p) and _is_cremad_name(p.stem) for p in root.iterdir())


def _find_metadata(name: str, places: Sequence[Path]) -> Path | None:
    for place in places:
        for candidate in (place / name, place / "processedResults" / name):
            if candidate.is_file():
                return candidate
    return None


def _read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise InputError(f"{path}: cannot read the CREMA-D metadata table ({err})") from err


def _age_group(age: str) -> str:
    try:
        years = int(float(age))
    except ValueError:
        return ""
    return "60+" if years >= 60 else f"{years // 10 * 10}-{years // 10 * 10 + 9}"


def _metadata_places(root: Path | None, metadata_dir: str | Path | None) -> list[Path]:
    places: list[Path] = []
    if metadata_dir is not None:
        places.append(Path(metadata_dir))
    if root is not None:
        places += [root, root.parent]
    places.append(_BUNDLED)
    return places


def from_paths(
    paths: Sequence[Path],
    *,
    label_source: str = "intended",
    metadata_dir: str | Path | None = None,
    root: Path | None = None,
) -> Dataset:
    """A CREMA-D dataset from clip paths named like CREMA-D (other names are skipped and reported).

    label_source: ``intended`` or ``face_vote`` (module doc). Metadata tables are looked up in
    ``metadata_dir``, ``root``, its parent and the repository's ``data/cremad/``.
    """
    if label_source not in LABEL_SOURCES:
        raise InputError(f"label source '{label_source}' unknown; use one of: {', '.join(LABEL_SOURCES)}")
    places = _metadata_places(root, metadata_dir)
    demographics: dict[str, dict[str, str]] = {}
    demo_path = _find_metadata("VideoDemographics.csv", places)
    if demo_path is not None:
        for row in _read_csv(demo_path):
            actor = (row.get("ActorID") or "").strip()
            if actor:
                demographics[actor] = {k: (row.get(k) or "").strip() for k in DEMOGRAPHICS}
                demographics[actor]["AgeGroup"] = _age_group(demographics[actor]["Age"])
    votes: dict[str, dict[str, str]] = {}
    summary_path = _find_metadata("summaryTable.csv", places)
    if summary_path is not None:
        votes = {row["FileName"].strip(): row for row in _read_csv(summary_path) if row.get("FileName")}
    elif label_source == "face_vote":
        raise InputError(
            "summaryTable.csv not found (looked in the dataset folder, its processedResults/ and data/cremad/); "
            "it is needed for --label-source face_vote"
        )
    clips: list[Clip] = []
    skipped: dict[str, str] = {}
    seen: set[str] = set()
    for path in sorted(paths):
        try:
            name = parse_name(path.stem)
        except InputError:
            skipped[str(path)] = "not named like a CREMA-D clip (ACTOR_SENTENCE_EMOTION_LEVEL)"
            continue
        if path.stem in seen:
            skipped[str(path)] = f"a second file of clip {path.stem}"
            continue
        if not path.is_file():
            skipped[str(path)] = "file not found"
            continue
        vote = votes.get(path.stem, {})
        face_vote = (vote.get("FaceVote") or "").strip()
        label = name.emotion
        if label_source == "face_vote":
            if not face_vote:
                skipped[str(path)] = "no FaceVote in summaryTable.csv"
                continue
            if ":" in face_vote or face_vote not in VOTE_CODES:
                skipped[str(path)] = f"face vote is a tie or unknown ({face_vote})"
                continue
            label = VOTE_CODES[face_vote]
        meta = {"sentence": name.sentence, "level": name.level, "intended": name.emotion}
        if face_vote:
            meta["face_vote"] = face_vote
            meta["face_level"] = (vote.get("FaceLevel") or "").strip()
        meta.update(demographics.get(name.actor, {}))
        seen.add(path.stem)
        clips.append(Clip(path=path, label=label, subject=name.actor, clip_id=path.stem, meta=meta))
    if not clips:
        where = root or (paths[0].parent if paths else Path("."))
        raise InputError(f"{where}: no CREMA-D clip found (names like 1001_DFA_ANG_XX.flv)")
    return Dataset(
        name="cremad", root=root or clips[0].path.parent, clips=tuple(clips), labels=EMOTIONS, label_key="cremad",
        skipped=skipped,
    )  # fmt: skip


def load_cremad(root: str | Path, *, label_source: str = "intended", metadata_dir: str | Path | None = None) -> Dataset:
    """Read a CREMA-D folder: ``ROOT/VideoFlash/*`` if present, else the clips directly in ``ROOT``."""
    root = Path(root)
    folder = root / "VideoFlash" if (root / "VideoFlash").is_dir() else root
    try:
        paths = [p for p in folder.iterdir() if is_video(p)]
    except OSError as err:
        raise InputError(f"{folder}: cannot list the CREMA-D folder ({err.strerror or err})") from err
    return from_paths(paths, label_source=label_source, metadata_dir=metadata_dir, root=root)
