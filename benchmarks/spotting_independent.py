"""Spotting on footage it was not tuned on (prints its figures; not a test).

1. Appearance-blend footage (benchmarks/blend_footage.py: real apex frames of CREMA-D actor 1001,
   chosen by OpenFace, cross-faded into his neutral sentence, amplitudes 0.35-1, micro 70-480 ms,
   speech and head motion in the base): MEGC micro / macro F1 (IoU >= 0.5) on seeds that no
   setting was chosen on (``--seeds``; the defaults were chosen on seeds 0-2).
2. Motion-transfer footage (benchmarks/motion_footage.py: the normalised-mesh motion of real
   expressions of corpus people, chosen by OpenFace, retargeted onto the same base face) from
   people no setting was chosen on (``HELD_OUT_PEOPLE``; the defaults were chosen with
   ``TUNING_PEOPLE``), same seeds.
   And aupipe's own ``synth`` footage (landmark warps by the detector's own AU motions) for
   reference, on a seed the tests do not use.
3. Natural footage: every clip of ``../shared/corpus`` (talking heads, interviews, acted
   expressions; no injected events): micro and macro events per minute per clip, median and
   90th percentile, with the default ``min_confidence`` and with every event (0). The corpus was
   used to choose the defaults, so these figures are in-sample.
4. Events by confidence: F1 of both generators at each ``min_confidence`` and the natural
   footage's micro events per minute.
5. Imported archives: every OpenFace table in ``../shared/corpus/openface`` through
   ``aupipe.analyze_frames`` (windows, mapping, spotting on another tool's AUs).

Without the corpus (OpenFace picks the apex frames and the source motions), only the own-synth
figure is printed.

Usage: python benchmarks/spotting_independent.py [--seeds 10 11 12] [--minutes 1] [--corpus ../shared/corpus]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

SAMPLES = ROOT / "data" / "samples"
BASE = SAMPLES / "1001_DFA_NEU_XX.flv"
APEX = [SAMPLES / f"1001_DFA_{e}_XX.flv" for e in ("HAP", "ANG", "DIS", "SAD", "FEA")]
CONFIDENCES = (0.0, 0.3, 0.5, 0.6, 0.7, 0.8)
#: The spotter's settings before issue 16 (every event reported), printed as "[before]".
BEFORE = {"range_percentile": 95.0, "peak_fraction": 0.4, "min_confidence": 0.0}
#: Corpus clips (one person each) whose expressions the motion generator retargets.
TUNING_PEOPLE = ("liveportrait_d18", "liveportrait_d12", "liveportrait_d6", "tpsmm_driving")
HELD_OUT_PEOPLE = ("smirk_dafoe", "liveportrait_d0", "sadtalker_WDA_KatieHill_000", "sadtalker_RD_Radio2_000", "dpe_d")


def frames_of(path: Path) -> pd.DataFrame:
    """The frame table of ``path`` (no landmark columns), AupipeWarnings silenced."""
    import aupipe

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", aupipe.AupipeWarning)
        return aupipe.analyze(path, settings=aupipe.PipelineSettings(include_landmarks=False)).frames


def scores(frames: pd.DataFrame, truth: pd.DataFrame, **changes: float) -> dict[str, dict]:
    """MEGC scores of the spotter (default settings with ``changes``) on ``frames``."""
    from aupipe.events import spot_eval, spotting

    settings = dataclasses.replace(spotting.SpottingSettings(), **changes)
    return spot_eval.evaluate(spotting.spot(frames, settings), truth)


def pooled(results: list[dict[str, dict]], kind: str) -> tuple[int, int, int, float]:
    """(tp, predicted, truth, F1) of ``kind`` summed over ``results``."""
    tp = sum(r[kind]["tp"] for r in results)
    pred = sum(r[kind]["n_pred"] for r in results)
    truth = sum(r[kind]["n_truth"] for r in results)
    return tp, pred, truth, 2 * tp / max(pred + truth, 1)


def natural_rates(corpus: Path, **changes: float) -> pd.DataFrame:
    """Micro and macro events per minute on every corpus clip (cached frame tables), spotted with
    the default settings and ``changes``."""
    from aupipe.events import spotting

    settings = dataclasses.replace(spotting.SpottingSettings(), **changes)
    rows = []
    for item in json.loads((corpus / "manifest.json").read_text()):
        frames = CACHE.get(item["file"])
        if frames is None:
            frames = CACHE[item["file"]] = frames_of(corpus / "clips" / item["file"])
        events = spotting.spot(frames, settings)
        minutes = (frames["time_ms"].iloc[-1] - frames["time_ms"].iloc[0]) / 60000.0
        rows.append({"clip": Path(item["file"]).stem, "minutes": minutes, "speaking": frames["speaking"].mean(),
                     "micro_per_min": (events["kind"] == "micro").sum() / minutes,
                     "macro_per_min": (events["kind"] == "macro").sum() / minutes})  # fmt: skip
    return pd.DataFrame(rows)


CACHE: dict[str, pd.DataFrame] = {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", help="footage seeds (default 10 11 12; 0-4 with --tune)")
    parser.add_argument(
        "--tune", action="store_true",
        help="the footage the defaults were chosen on (TUNING_PEOPLE, seeds 0-4) and a grid of range_percentile",
    )  # fmt: skip
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    args = parser.parse_args()
    args.seeds = args.seeds or ([0, 1, 2, 3, 4] if args.tune else [10, 11, 12])
    people = TUNING_PEOPLE if args.tune else HELD_OUT_PEOPLE
    from aupipe.events import synth, spotting

    import blend_footage
    import motion_footage

    default = spotting.SpottingSettings().min_confidence
    have_corpus = (args.corpus / "manifest.json").exists()
    clock = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        blend: list[tuple[pd.DataFrame, pd.DataFrame]] = []
        motion: list[tuple[pd.DataFrame, pd.DataFrame]] = []
        if have_corpus:
            for seed in args.seeds:
                out = Path(tmp) / f"blend{seed}.avi"
                truth = blend_footage.make_footage(BASE, APEX, out, args.minutes, 10, 3, seed, corpus=args.corpus)
                blend.append((frames_of(out), truth))
                out = Path(tmp) / f"motion{seed}.avi"
                truth = motion_footage.make_footage(BASE, people, out, args.minutes, seed=seed, corpus=args.corpus)
                motion.append((frames_of(out), truth))
        own_out = Path(tmp) / "own.avi"
        own_truth = synth.synthesize(BASE, own_out, n_micro=10, n_macro=3, seed=7, duration_s=args.minutes * 60)
        own = (frames_of(own_out), own_truth)
    print(f"footage made and analysed in {time.perf_counter() - clock:.0f} s\n")

    print(f"1-2. MEGC F1 (IoU >= 0.5), default settings (min_confidence {default:.2f})")
    print(f"{'footage':<44}{'micro TP/pred/truth':>22}{'F1':>7}{'macro TP/pred/truth':>22}{'F1':>7}")
    seeds = " ".join(map(str, args.seeds))
    who = "tuning" if args.tune else "held-out"
    sets = [(f"blend, seeds {seeds}", blend), (f"motion, {who} people, seeds {seeds}", motion)] if blend else []
    sets.append(("own synth (seed 7)", [own]))
    for label, changes in (("", {}), (" [before]", BEFORE)):
        for name, footage in sets:
            results = [scores(f, t, **changes) for f, t in footage]
            mi, ma = pooled(results, "micro"), pooled(results, "macro")
            counts = ["/".join(map(str, k[:3])) for k in (mi, ma)]
            print(f"{name + label:<44}{counts[0]:>22}{mi[3]:>7.2f}{counts[1]:>22}{ma[3]:>7.2f}")
    if not have_corpus:
        print(f"\n{args.corpus} not found: blend footage and natural-footage rates skipped")
        return

    print("\n3. Natural footage (corpus, in-sample): events per minute per clip")
    for conf, changes in ((f"{default:.2f}", {}), ("0.00", {"min_confidence": 0.0}), ("[before]", BEFORE)):
        rates = natural_rates(args.corpus, **changes)
        print(f"  min_confidence {conf}: micro median {rates['micro_per_min'].median():.1f}, "
              f"p90 {rates['micro_per_min'].quantile(0.9):.1f}; macro median {rates['macro_per_min'].median():.1f}, "
              f"p90 {rates['macro_per_min'].quantile(0.9):.1f} ({len(rates)} clips, {rates['minutes'].sum():.1f} min)")  # fmt: skip
    worst = natural_rates(args.corpus).sort_values("micro_per_min", ascending=False).head(5)
    print("  most micro events (default):", ", ".join(f"{r.clip} {r.micro_per_min:.1f}/min (speaking {r.speaking:.0%})"
                                                       for r in worst.itertuples()))  # fmt: skip

    print(
        "\n4. By min_confidence: micro / macro F1 per generator, natural micro events per minute (all; talking clips)"
    )
    ranges = (95.0, 85.0) if args.tune else (spotting.SpottingSettings().range_percentile,)
    for changes in [{"range_percentile": r, "min_confidence": c} for r in ranges for c in CONFIDENCES]:
        f1 = []
        for footage in (blend, motion, [own]):
            results = [scores(f, t, **changes) for f, t in footage]
            f1.append(f"{pooled(results, 'micro')[3]:.2f} / {pooled(results, 'macro')[3]:.2f}")
        rates = natural_rates(args.corpus, **changes)
        talk = rates[rates["speaking"] >= 0.5]["micro_per_min"]
        conf = changes["min_confidence"]
        print(f"  range {changes['range_percentile']:.0f}, {conf:.2f}: blend {f1[0]}, motion {f1[1]}, own {f1[2]}; natural p50 "
              f"{rates['micro_per_min'].median():.1f}, p90 {rates['micro_per_min'].quantile(0.9):.1f}; "
              f"talking p90 {talk.quantile(0.9):.1f} ({len(talk)} clips)")  # fmt: skip
    print("\n5. OpenFace tables imported (aupipe.analyze_frames)")
    import aupipe

    tables = sorted((args.corpus / "openface").glob("*.csv"))
    started, n_rows, n_events, failed = time.perf_counter(), 0, 0, []
    for table in tables:
        try:
            result = aupipe.analyze_frames(table, kind="openface")
        except aupipe.AupipeError as err:
            failed.append(f"{table.name}: {err}")
            continue
        n_rows += len(result.frames)
        n_events += len(result.events)
    print(
        f"  {len(tables) - len(failed)}/{len(tables)} tables, {n_rows} frames, {n_events} events, "
        f"{time.perf_counter() - started:.1f} s" + "".join(f"\n  FAILED {f}" for f in failed)
    )
    print(f"\ntotal {time.perf_counter() - clock:.0f} s")


if __name__ == "__main__":
    main()
