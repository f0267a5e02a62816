"""Speaking benchmark on real people (prints its figures; not a test).

For each clip of the development corpus (``../shared/corpus``: talking heads, interviews,
acted expressions without speech, singing...) and for the bundled CREMA-D samples (an actor
saying one sentence after a short silent start), prints the share of face frames that
``aupipe.signal.speech`` marks as speaking, next to the manifest's description and what is expected:

- ``talk``: the description says talking, an interview or an address (most frames speaking);
- ``quiet``: acted expressions, grimaces or a still face without talk (few frames speaking);
- ``-``: anything else (singing, laughing, crying, several faces): shown, not scored.

Raw frame tables are read from ``--cache`` (``<clip stem>.parquet``, the columns of
``aupipe.chain.stream_frames``) when there, else made with ``stream_frames`` (slow).
Without the corpus folder, it says so and exits 0.

``--folds`` shows how much the thresholds rest on particular people: for each person (the
manifest's ``identities``), a small grid of the main thresholds is scored on the other people's
clips only (mean share on talk clips minus mean share on quiet clips) and the best setting is
applied to the held-out person; the held-out shares are printed next to the defaults' shares.
(The lip-corner twist test rests on one grimacing person, liveportrait_d6: held out, the grid
drops it and her share rises.)

Usage: python benchmarks/speaking.py [--corpus ../shared/corpus] [--cache ../cache/raw] [--folds]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aupipe.chain.frames import stream_frames  # noqa: E402
from aupipe.chain.settings import PipelineSettings  # noqa: E402
from aupipe.signal import speech  # noqa: E402

#: Clips of acted expressions / still faces without talk (from the manifest's descriptions).
QUIET = ("liveportrait_d6", "liveportrait_d18", "liveportrait_s18", "openface_2015-10-15-15-14", "liveportrait_d14")
TALK_WORDS = re.compile(r"\btalking\b(?!-like)|interview|address", re.IGNORECASE)
#: The grid ``--folds`` searches: (min_level_fw, max_twist, min_evidence_share).
GRID = list(itertools.product((0.004, 0.006, 0.01), (0.4, 0.5, 0.8, None), (0.3, 0.4, 0.5)))


def expected(stem: str, description: str) -> str:
    if stem in QUIET:
        return "quiet"
    if stem.startswith("1001_DFA_") or (TALK_WORDS.search(description) and "singing" not in description):
        return "talk"
    return "-"


def raw_table(path: Path, cache: Path) -> pd.DataFrame:
    cached = cache / f"{path.stem}.parquet"
    if cached.exists():
        return pd.read_parquet(cached, columns=[*speech.INPUT_COLUMNS, *speech.TWIST_COLUMNS])
    print(f"  (no cached table for {path.name}: running stream_frames)", file=sys.stderr)
    settings = PipelineSettings(include_landmarks=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pd.concat(list(stream_frames(path, settings)), ignore_index=True)


def speaking_share(frames: pd.DataFrame, settings: speech.SpeechSettings) -> float:
    """Share of face frames speaking (NaN without any face frame)."""
    speaking = speech.speaking_table(frames, settings)["speaking"].to_numpy()
    return float(np.nanmean(speaking)) if np.isfinite(speaking).any() else float("nan")


def score(shares: dict[str, float], labels: dict[str, str]) -> float:
    talk = [v for k, v in shares.items() if labels[k] == "talk" and np.isfinite(v)]
    quiet = [v for k, v in shares.items() if labels[k] == "quiet" and np.isfinite(v)]
    return (np.mean(talk) if talk else 0.0) - (np.mean(quiet) if quiet else 0.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    parser.add_argument("--cache", type=Path, default=ROOT.parent / "cache" / "raw")
    parser.add_argument("--folds", action="store_true", help="leave-one-person-out check of the thresholds")
    args = parser.parse_args()
    manifest_path = args.corpus / "manifest.json"
    if not manifest_path.exists():
        print(f"speaking benchmark: no corpus at {args.corpus} (manifest.json missing); nothing to do")
        return 0
    clips: dict[str, tuple[Path, str, tuple[str, ...]]] = {}
    for entry in json.loads(manifest_path.read_text()):
        clips[Path(entry["file"]).stem] = (
            args.corpus / "clips" / entry["file"],
            entry["description"],
            tuple(entry["identities"]),
        )
    for path in sorted((ROOT / "data" / "samples").glob("1001_DFA_*_XX.flv")):
        clips[path.stem] = (path, "CREMA-D sample: one sentence after a short silent start", ("CREMA-D-1001",))
    tables = {stem: raw_table(path, args.cache) for stem, (path, _, _) in clips.items()}
    labels = {stem: expected(stem, description) for stem, (_, description, _) in clips.items()}

    defaults = speech.SpeechSettings()
    shares = {stem: speaking_share(table, defaults) for stem, table in tables.items()}
    print(f"{'clip':34s} {'fps':>5s} {'faces':>6s} {'speaking':>8s}  expect  description")
    for stem, table in tables.items():
        face = table["face_found"].to_numpy(dtype=bool)
        fps = 1000.0 / float(np.median(np.diff(table["time_ms"]))) if len(table) > 1 else float("nan")
        print(
            f"{stem:34s} {fps:5.1f} {int(face.sum()):6d} {shares[stem]:8.2f}  {labels[stem]:6s}  {clips[stem][1][:90]}"
        )
    for label in ("talk", "quiet"):
        values = [v for k, v in shares.items() if labels[k] == label and np.isfinite(v)]
        spread = f"lowest {min(values):.2f}, highest {max(values):.2f}"
        print(f"mean share speaking, {label} clips ({len(values)}): {np.mean(values):.2f} ({spread})")

    if args.folds:
        results = {}
        for level, twist, share in GRID:
            settings = dataclasses.replace(defaults, min_level_fw=level, max_twist=twist, min_evidence_share=share)
            results[(level, twist, share)] = {stem: speaking_share(table, settings) for stem, table in tables.items()}
        people = sorted({person for _, _, ids in clips.values() for person in ids})
        print("\nleave-one-person-out (grid fitted on the other people):")
        print(f"{'clip':34s} expect  defaults  held-out  (min_level_fw, max_twist, min_evidence_share)")
        for person in people:
            held = [s for s, (_, _, ids) in clips.items() if person in ids and labels[s] != "-"]
            if not held:
                continue
            others = {s: lab for s, lab in labels.items() if person not in clips[s][2]}
            best = max(GRID, key=lambda g: score({s: results[g][s] for s in others}, others))
            for stem in held:
                print(f"{stem:34s} {labels[stem]:6s}  {shares[stem]:8.2f}  {results[best][stem]:8.2f}  {best}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
