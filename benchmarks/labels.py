"""Clip-label benchmark: each shipped mapping's label per acted clip against the intended emotion (prints; not a test).

For each labelled clip the landmarks, AUs and windows are computed once (``aupipe.analyze`` with
the first mapping), then the window table is re-labelled with every other mapping through
``aupipe.chain.label_windows`` (the same scoring ``analyze`` does, ``speaking`` and any other
window column included). A clip's label under a mapping is the core emotion with the most
windows, ignoring windows with no face (``face_coverage == 0``) and windows whose ``emotion`` is
``uncertain``; "uncertain" when every window is ignored. The core emotion becomes a dataset label
through the mapping: the label (``--label-key``, default ``cremad``) its categories share, or
``neutral_labels`` for the neutral label; "unlabelled" (counted wrong) when its categories
disagree or have none. A clip is right when that label, or the core emotion's own name, equals
its intended label. Shares are of the clip's face windows.

Clips: by default the six CREMA-D samples ``data/samples/1001_DFA_*_XX.flv``; ``--clips DIR``
takes every video in DIR named like CREMA-D (``1001_DFA_ANG_XX.flv``, emotion from the name);
``--labels FILE.csv`` takes columns ``path,label`` (paths relative to the CSV's folder; labels a
CREMA-D code or any label string). CREMA-D's face-only crowd vote (``FaceVote`` of
``data/cremad/summaryTable.csv``, with its agreement in percent) is shown beside clips it rates.

Prints, per mapping: a table per clip, the number right out of N, and a confusion table
(intended x predicted). When ``../shared/corpus/openface`` has a clip's OpenFace 2.2 table (it has
the six CREMA-D samples'), the column ``OF AUs`` gives the label the same mapping gives to
OpenFace's AUs of that clip (``aupipe.analyze_frames``: the same windows and scoring), with its
own count right: it tells a wrong label that comes from aupipe's AUs from one the mapping would
give on the reference tool's AUs too. Read in place, written nowhere. Then the neutral talking
check: the share of face windows labelled neutral or uncertain (target >= 80%) on the NEU sample
and, when ``../shared/corpus`` is there, on a few of its talking clips (read in place; nothing
from it is written anywhere). Without the corpus it says so and skips that part. Writes nothing. About 15 s on the defaults (2 cores).

Usage: python benchmarks/labels.py [--clips DIR | --labels FILE.csv] [--mapping NAME_OR_FILE ...]
       [--label-key cremad] [--corpus ../shared/corpus] [--quiet]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aupipe  # noqa: E402
from aupipe.chain.labels import label_windows  # noqa: E402
from aupipe.chain.settings import PipelineSettings  # noqa: E402
from aupipe.learning.datasets import cremad, is_video  # noqa: E402
from aupipe.rules.mapping import Mapping, list_mappings  # noqa: E402

SAMPLES = ROOT / "data" / "samples"
SUMMARY = ROOT / "data" / "cremad" / "summaryTable.csv"
CORPUS = ROOT / ".." / "shared" / "corpus"
NEU_SAMPLE = SAMPLES / "1001_DFA_NEU_XX.flv"
TALK_CLIPS: tuple[str, ...] = ("video-retalking_face_1.mp4", "video-retalking_face_4.mp4", "lia_vox_driving2.mp4")
TARGET = 0.8  # share of neutral-or-uncertain windows wanted on a neutral talking face
UNCERTAIN = "uncertain"
UNLABELLED = "unlabelled"
SETTINGS = PipelineSettings(include_landmarks=False, spotting=None)  # neither changes the labels


class BadInput(Exception):
    """A path or table the user gave is unusable (one line on stderr, exit 2)."""


@dataclass(frozen=True)
class ClipLabel:
    winner: str  # core emotion with the most windows, or "uncertain"
    label: str  # its dataset label, "unlabelled" or "uncertain"
    share_winner: float
    share_neutral: float
    share_uncertain: float


def default_clips() -> list[tuple[Path, str]]:
    return [(SAMPLES / f"1001_DFA_{emo}_XX.flv", emo) for emo in cremad.EMOTIONS]


def folder_clips(folder: Path) -> list[tuple[Path, str]]:
    if not folder.is_dir():
        raise BadInput(f"{folder}: --clips needs a folder of CREMA-D-named clips")
    clips = []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and is_video(p)):
        try:
            clips.append((path, cremad.parse_name(path.stem).emotion))
        except aupipe.InputError:
            continue
    if not clips:
        raise BadInput(f"{folder}: no video named like CREMA-D (ACTOR_SENTENCE_EMO_LEVEL, e.g. 1001_DFA_ANG_XX.flv)")
    return clips


def csv_clips(table: Path) -> list[tuple[Path, str]]:
    if not table.is_file():
        raise BadInput(f"{table}: --labels file not found")
    try:
        with table.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise BadInput(f"{table}: cannot read the --labels CSV ({err})") from err
    if not rows or not {"path", "label"} <= set(rows[0]):
        raise BadInput(f"{table}: needs a header with columns path,label and at least one row")
    clips = [((table.parent / row["path"].strip()), row["label"].strip()) for row in rows]
    for path, _ in clips:
        if not path.is_file():
            raise BadInput(f"{table}: clip {path} not found (paths are relative to the CSV's folder)")
    return clips


def crowd_votes() -> dict[str, str]:
    """Clip stem -> its face-only crowd vote and agreement, e.g. ``H 67%`` (``A:D 31:51%`` on a tie)."""
    if not SUMMARY.is_file():
        return {}
    with SUMMARY.open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    levels = {row["FileName"]: ":".join(f"{float(x):.0f}" for x in row["FaceLevel"].split(":")) for row in rows}
    return {row["FileName"]: f"{row['FaceVote']} {levels[row['FileName']]}%" for row in rows}


def window_tables(path: Path, mappings: dict[str, Mapping], openface: Path | None = None) -> dict[str, pd.DataFrame]:
    """The clip's window table labelled by every mapping; landmarks and AUs computed once.
    ``openface``: an OpenFace CSV of the clip, whose AUs are windowed and labelled instead."""
    first, *others = mappings
    if openface is None:
        labelled = aupipe.analyze(path, mapping=mappings[first], settings=SETTINGS).windows
    else:
        labelled = aupipe.analyze_frames(openface, mapping=mappings[first], settings=SETTINGS).windows
    empty = pd.DataFrame(columns=["AU01"], dtype=float)
    added = set(aupipe.score_emotions(empty, mappings[first]).columns) | {"in_event"}
    base = labelled[[c for c in labelled.columns if c not in added]]
    tables = {first: labelled}
    for name in others:
        table = label_windows(base, mappings[name])
        tables[name] = table.loc[:, ~table.columns.duplicated(keep="last")]
    return tables


def core_label(core: str, mapping: Mapping, key: str) -> str:
    """The dataset label of a core emotion: the one its categories share, else "unlabelled"."""
    if core == mapping.neutral:
        return mapping.neutral_labels.get(key, UNLABELLED)
    labels = {c.labels.get(key) for c in mapping.categories if c.parent == core}
    return labels.pop() if len(labels) == 1 and None not in labels else UNLABELLED


def clip_label(table: pd.DataFrame, mapping: Mapping, key: str) -> ClipLabel:
    face = table[table["face_coverage"] > 0]
    n = max(len(face), 1)
    uncertain = face["emotion"] == UNCERTAIN
    counts = face.loc[~uncertain, "core_emotion"].value_counts()
    share_neutral = float((face["emotion"] == mapping.neutral).sum()) / n
    if counts.empty:
        return ClipLabel(UNCERTAIN, UNCERTAIN, 0.0, share_neutral, float(uncertain.sum()) / n)
    order = [*mapping.parents, mapping.neutral]
    rank = {core: order.index(core) if core in order else len(order) for core in counts.index}
    winner = min(counts.index, key=lambda core: (-counts[core], rank[core]))
    return ClipLabel(
        winner, core_label(winner, mapping, key), counts[winner] / n, share_neutral, float(uncertain.sum()) / n
    )


def is_right(intended: str, result: ClipLabel) -> bool:
    if result.label in (UNCERTAIN, UNLABELLED):
        return False
    return intended.casefold() in (result.label.casefold(), result.winner.casefold())


def print_mapping(name: str, clips: list[tuple[Path, str]], results: list[ClipLabel], votes: dict[str, str],
                  reference: dict[Path, ClipLabel] | None = None) -> None:  # fmt: skip
    """``reference``: per clip with an OpenFace table, the label from OpenFace's AUs."""
    reference = reference or {}
    print(f"== {name}")
    print(f"{'clip':28s} {'intended':>10s} {'winner':>12s} {'label':>10s} {'win%':>5s} {'neu%':>5s} {'unc%':>5s}"
          f" {'crowd':>7s}  ok    {'OF AUs':>10s}")  # fmt: skip
    right = right_reference = 0
    for (path, intended), res in zip(clips, results, strict=True):
        ok = is_right(intended, res)
        right += ok
        theirs = reference.get(path)
        right_reference += theirs is not None and is_right(intended, theirs)
        print(
            f"{path.stem[:28]:28s} {intended[:10]:>10s} {res.winner[:12]:>12s} {res.label[:10]:>10s}"
            f" {100 * res.share_winner:5.0f} {100 * res.share_neutral:5.0f} {100 * res.share_uncertain:5.0f}"
            f" {votes.get(path.stem, '-'):>7s}  {'right' if ok else 'wrong'}"
            f" {(theirs.winner if theirs else '-')[:10]:>10s}"
        )
    theirs_line = f"; from OpenFace's AUs: {right_reference} / {len(reference)} clips that have its table"
    print(f"right: {right} / {len(clips)}" + (theirs_line if reference else ""))
    pairs = Counter((intended, res.label) for (_, intended), res in zip(clips, results, strict=True))
    rows = sorted({i for i, _ in pairs})
    cols = sorted({p for _, p in pairs})
    print("confusion (rows intended, columns predicted label):")
    print(f"{'':>10s} " + " ".join(f"{c[:10]:>10s}" for c in cols))
    for r in rows:
        print(f"{r[:10]:>10s} " + " ".join(f"{pairs.get((r, c), 0):10d}" for c in cols))
    print()


def neutral_share(table: pd.DataFrame, mapping: Mapping) -> float:
    face = table[table["face_coverage"] > 0]
    if face.empty:
        return float("nan")
    return float(face["emotion"].isin([mapping.neutral, UNCERTAIN]).mean())


def talking_clips(corpus: Path) -> list[Path]:
    manifest = corpus / "manifest.json"
    if not manifest.is_file():
        print(f"(no corpus at {corpus}: manifest.json missing; only the NEU sample is checked)")
        return [NEU_SAMPLE]
    listed = {entry["file"] for entry in json.loads(manifest.read_text())}
    return [NEU_SAMPLE, *(corpus / "clips" / f for f in TALK_CLIPS if f in listed and (corpus / "clips" / f).is_file())]


def print_neutral_check(tables: dict[Path, dict[str, pd.DataFrame]], mappings: dict[str, Mapping]) -> None:
    print(f"== neutral talking check: share of face windows neutral or uncertain (target >= {100 * TARGET:.0f}%)")
    print(f"{'clip':30s} " + " ".join(f"{name[:16]:>16s}" for name in mappings))
    for path, by_mapping in tables.items():
        shares = [neutral_share(by_mapping[name], mappings[name]) for name in mappings]
        cells = [f"{100 * s:4.0f}% {'ok' if s >= TARGET else 'low':>4s}" for s in shares]
        print(f"{path.stem[:30]:30s} " + " ".join(f"{c:>16s}" for c in cells))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--clips", type=Path, help="folder of clips with CREMA-D names")
    source.add_argument("--labels", type=Path, help="CSV with columns path,label")
    parser.add_argument("--mapping", action="append", metavar="NAME_OR_FILE",
                        help="only this mapping: a shipped name or a YAML file (repeatable)")  # fmt: skip
    parser.add_argument("--label-key", default="cremad", help="which labels of the mapping's categories to compare")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args()
    try:
        mappings = {name: aupipe.load_mapping(name) for name in (args.mapping or list_mappings())}
    except aupipe.AupipeError as err:
        parser.exit(2, f"labels.py: {err}\n")
    try:
        clips = csv_clips(args.labels) if args.labels else folder_clips(args.clips) if args.clips else default_clips()
        for path, _ in clips:
            if not path.is_file():
                raise BadInput(f"{path}: clip not found")
        votes = crowd_votes()
        check = talking_clips(args.corpus)
        tables: dict[Path, dict[str, pd.DataFrame]] = {}
        references: dict[Path, dict[str, pd.DataFrame]] = {}
        labelled = {p for p, _ in clips}
        paths = list(dict.fromkeys([*(p for p, _ in clips), *check]))
        for i, path in enumerate(paths, 1):
            if not args.quiet:
                print(f"[{i}/{len(paths)}] {path.name}", file=sys.stderr, flush=True)
            reference = args.corpus / "openface" / f"{path.stem}.csv"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", aupipe.AupipeWarning)
                tables[path] = window_tables(path, mappings)
                if path in labelled and reference.is_file():  # OpenFace's AUs, same windows and mapping
                    references[path] = window_tables(path, mappings, openface=reference)
    except (BadInput, aupipe.InputError) as err:
        print(f"labels benchmark: {err}", file=sys.stderr)
        return 2
    print()
    for name, mapping in mappings.items():
        results = [clip_label(tables[path][name], mapping, args.label_key) for path, _ in clips]
        theirs = {path: clip_label(t[name], mapping, args.label_key) for path, t in references.items()}
        print_mapping(name, clips, results, votes, theirs)
    print_neutral_check({path: tables[path] for path in check}, mappings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
