"""Training and evaluation of the emotion CNN (issue 5), on the real clips and on a learnable toy set.

- End to end on the six real CREMA-D clips: ``aupipe train`` -> ``aupipe evaluate`` (through
  their argparse layer) -> the ``aupipe run --model`` hook (``predict_windows``) on a fresh
  ``aupipe.analyze``; a copy of the clips under a second actor makes speaker-grouped folds
  possible and proves the content-hash cache (the copies are never analysed again).
- Folds never share a subject, and ReliefF (spied on at scikit-rebate's ``fit``) sees training rows only.
- On synthetic data only a working CNN can separate, it reaches >= 0.9, reproducibly.
- A model whose version, mapping or features do not fit is refused with one line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import aupipe
from aupipe.cli import train as training_cli
from aupipe.learning import reports, training
from aupipe.learning.datasets import load_dataset
from aupipe.learning.features import (
    SegmentSettings,
    clip_segments,
    extract_features,
    file_sha256,
    load_frames,
    resample_windows,
)
from aupipe.learning.model import ARTIFACT_FILES, ModelError, load_model, predict_windows
from aupipe.learning.network import NetworkConfig
from aupipe.chain import label_windows
from aupipe.signal.windows import compute_windows

from .conftest import CREMAD, SAMPLES, clip


def assert_scores_match_confusion(block: dict[str, Any]) -> None:
    """accuracy, UAR and macro F1 as the confusion matrix gives them (classes never seen nor predicted left out)."""
    matrix = np.asarray(block["confusion"], dtype=float)
    truth, predicted, hits = matrix.sum(axis=1), matrix.sum(axis=0), np.diag(matrix)
    seen = truth > 0
    used = seen | (predicted > 0)
    assert block["accuracy"] == pytest.approx(hits.sum() / matrix.sum())
    assert block["uar"] == pytest.approx(np.mean(hits[seen] / truth[seen]))
    assert block["macro_f1"] == pytest.approx(np.mean(2 * hits[used] / (truth[used] + predicted[used])))


def test_classification_metrics_on_a_known_case() -> None:
    truth = ["a", "a", "a", "b", "b", "c"]
    pred = ["a", "a", "b", "b", "c", "c"]
    scores = reports.classification_metrics(truth, pred, ["a", "b", "c", "d"])
    assert scores["confusion"] == [[2, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    assert scores["accuracy"] == pytest.approx(4 / 6)
    assert scores["uar"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert scores["macro_f1"] == pytest.approx((4 / 5 + 1 / 2 + 2 / 3) / 3)  # d: neither true nor predicted
    assert scores["per_class_recall"] == {"a": pytest.approx(2 / 3), "b": 0.5, "c": 1.0, "d": None}
    assert scores["support"] == {"a": 3, "b": 2, "c": 1, "d": 0}
    assert_scores_match_confusion(scores)


def _parse(add: Any, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add(parser)
    return parser.parse_args(argv)


@pytest.fixture(scope="module", autouse=True)
def stable_cache_key() -> Any:
    """Pin the stage-code part of the cache key: other files of the tree may be edited while tests run."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("aupipe.learning.features.stage_fingerprint", lambda: "pinned-for-tests")
        yield


def test_cache_key_follows_content_settings_and_stage_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from aupipe.learning.features import cache_path, pipeline_version
    from aupipe.chain import PipelineSettings

    base = pipeline_version()
    assert base.startswith(f"{aupipe.__version__}-")
    assert pipeline_version(dataclasses.replace(PipelineSettings(), chunk_frames=8)) == base  # no effect on rows
    landmark_settings = dataclasses.replace(PipelineSettings().landmarks, min_face_detection_confidence=0.9)
    assert pipeline_version(dataclasses.replace(PipelineSettings(), landmarks=landmark_settings)) != base
    monkeypatch.setattr("aupipe.learning.features.stage_fingerprint", lambda: "changed AU code")
    assert pipeline_version() != base
    digest = file_sha256(clip("HAP"))
    assert digest == file_sha256(shutil.copy(clip("HAP"), tmp_path / "1002_DFA_HAP_XX.flv"))
    assert cache_path(tmp_path, digest, base) == tmp_path / base / digest[:2] / f"{digest}.npz"


@pytest.fixture(scope="module")
def cremad(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """VideoFlash/ with the six clips as actor 1001 and again as actor 1002, a corrupt and a faceless clip."""
    root = tmp_path_factory.mktemp("cremad")
    flash = root / "VideoFlash"
    flash.mkdir()
    for emotion in CREMAD:
        shutil.copy(clip(emotion), flash / f"1001_DFA_{emotion}_XX.flv")
        shutil.copy(clip(emotion), flash / f"1002_DFA_{emotion}_XX.flv")
    (flash / "1003_DFA_ANG_XX.flv").write_bytes(b"FLV\x01" + bytes(range(256)) * 20)
    shutil.copy(SAMPLES / "no_face.mp4", flash / "1003_DFA_NEU_XX.mp4")
    return root


@pytest.fixture(scope="module")
def trained(cremad: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``aupipe train`` through its argparse layer: 2 actor folds, 2 epochs, 2 worker processes."""
    base = tmp_path_factory.mktemp("trained")
    model_dir, cache = base / "model", base / "cache"
    args = _parse(training_cli.add_train_arguments, [
        str(cremad), "-o", str(model_dir), "--epochs", "2", "--folds", "2", "--select", "8", "--relief-rows", "90",
        "--cache-dir", str(cache), "--workers", "2", "--quiet",
    ])  # fmt: skip
    assert training_cli.cmd_train(args) == 0
    metrics = json.loads((model_dir / "metrics.json").read_text())
    return {"model_dir": model_dir, "cache": cache, "metrics": metrics, "base": base}


def test_train_evaluate_and_run_with_the_model_end_to_end(cremad: Path, trained: dict[str, Any]) -> None:
    model_dir, cache, metrics = trained["model_dir"], trained["cache"], trained["metrics"]
    for name in (*ARTIFACT_FILES, "metrics.json", "confusion.png"):
        assert (model_dir / name).is_file(), name
    assert (model_dir / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Features: one analysis per distinct content (6 clips + the faceless one); failures reported, not fatal.
    data = metrics["data"]
    assert len(list(cache.rglob("*.npz"))) == 7
    assert data["usable_clips"] == 12 and data["subjects"] == 3
    failed = data["skipped_clips"]
    assert set(failed) == {"1003_DFA_ANG_XX", "1003_DFA_NEU_XX"}
    assert "no face" in failed["1003_DFA_NEU_XX"] and "\n" not in failed["1003_DFA_ANG_XX"]
    assert set(data["windows_per_label"]) == set(CREMAD)
    # Resumable: a second pass finds every clip in the cache; only the unreadable one is tried again.
    again = extract_features(load_dataset(cremad).clips, cache, workers=2, progress=False)
    assert (again.computed, again.reused, len(again.files)) == (1, 13, 12)
    assert set(again.failed) == set(failed)

    cv = metrics["cross_validation"]
    assert cv["scheme"].startswith("leave-one-subject-out")
    assert [(f["train_subjects"], f["test_subjects"]) for f in cv["folds"]] == [
        (["1002"], ["1001"]),
        (["1001"], ["1002"]),
    ]
    assert all(f["relief_rows_in_test"] == 0 and 0 < f["relief_rows"] <= 90 for f in cv["folds"])
    for level in ("window", "clip"):
        block = cv["pooled"][level]
        assert np.asarray(block["confusion"]).sum() == block["n"]
        assert_scores_match_confusion(block)
    assert cv["pooled"]["clip"]["n"] == 12
    assert set(cv["pooled"]["per_group"]["Sex"]) == {"Male", "Female"}  # actors 1001 and 1002

    features = json.loads((model_dir / "features.json").read_text())
    labels = json.loads((model_dir / "labels.json").read_text())
    meta = json.loads((model_dir / "meta.json").read_text())
    assert len(features["channels"]) == 8 and all(c.startswith("AU") for c in features["channels"])
    assert (features["n_steps"], features["window_ms"], features["stride_ms"]) == (16, 500.0, 100.0)
    assert labels["labels"] == list(CREMAD) and labels["space"] == "dataset:cremad"
    mapping = aupipe.load_mapping()
    assert meta["mapping"] == {"name": mapping.name, "sha256": mapping.sha256, "source": mapping.source}
    assert meta["aupipe_version"] == aupipe.__version__ and meta["backend"]

    # aupipe evaluate, through its argparse layer.
    report = trained["base"] / "report"
    args = _parse(training_cli.add_evaluate_arguments, [
        str(model_dir), str(cremad), "-o", str(report), "--cache-dir", str(cache), "--quiet",
    ])  # fmt: skip
    assert training_cli.cmd_evaluate(args) == 0
    evaluated = json.loads((report / "metrics.json").read_text())
    assert (report / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    scores = evaluated["scores"]
    assert scores["window"]["n"] == data["windows"] and scores["clip"]["n"] == 12
    assert {"window_rule_only", "window_fused"} <= set(scores)
    assert evaluated["subjects_seen_in_training"] == ["1001", "1002"]

    # aupipe run --model: the hook on a fresh analysis gives probabilities and a fused label per window.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", aupipe.AupipeWarning)
        result = aupipe.analyze(clip("HAP"))
    out = predict_windows(model_dir, result.frames, result.windows)
    assert len(out) == len(result.windows)
    pd.testing.assert_frame_equal(out[list(result.windows.columns)], result.windows)
    probs = out[[f"prob_{label}" for label in CREMAD]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert set(out["final_label"]) <= set(CREMAD) and set(out["model_label"]) <= set(CREMAD)
    # The cached features give the windows and rule labels of aupipe run, and the same probabilities.
    frames = load_frames(next(cache.rglob(f"{file_sha256(clip('HAP'))}.npz")))
    X, kept = clip_segments(frames, mapping, SegmentSettings(), features["channels"])
    assert kept["emotion"].tolist() == result.windows["emotion"].tolist()
    model = load_model(model_dir)
    np.testing.assert_allclose(model.predict_proba(X), probs, atol=1e-5)
    # Streaming: a chunk that holds only a window's own frames gives that window the same result.
    row = result.windows.iloc[[4]]
    inside = result.frames[
        (result.frames["time_ms"] >= row["start_ms"].iloc[0]) & (result.frames["time_ms"] < row["end_ms"].iloc[0])
    ]
    np.testing.assert_allclose(
        model.predict_windows(inside, row).filter(like="prob_").to_numpy(), probs[[4]], atol=1e-6
    )


def test_folds_never_share_a_subject_and_relieff_sees_training_rows_only(monkeypatch: pytest.MonkeyPatch) -> None:
    import skrebate

    from aupipe.learning.selection import summarise

    data = training.synthetic_data(n_subjects=5, clips_per_class=2, windows_per_clip=4, seed=3)
    seen: list[np.ndarray] = []
    original = skrebate.ReliefF.fit

    def spy(self: Any, X: np.ndarray, y: np.ndarray) -> Any:
        seen.append(np.array(X, copy=True))
        return original(self, X, y)

    monkeypatch.setattr(skrebate.ReliefF, "fit", spy)
    config = training.TrainConfig(network=NetworkConfig(filters=(4,), epochs=1, batch_size=64), n_select=3,
                                  relief_max_rows=40)  # fmt: skip
    cv = training.cross_validate(data, folds=3, config=config, seed=0)

    summary = summarise(data.X)
    row_of = {summary[i].tobytes(): i for i in range(len(summary))}
    assert len(row_of) == len(data)  # every row is recognisable from what ReliefF receives
    assert len(seen) == len(cv.folds) == 3
    all_test = np.concatenate([f.test_rows for f in cv.folds])
    assert sorted(all_test.tolist()) == list(range(len(data)))  # every row is tested exactly once
    for fold, received in zip(cv.folds, seen, strict=True):
        assert not set(data.groups[fold.train_rows]) & set(data.groups[fold.test_rows])
        assert set(fold.test_subjects) == set(data.groups[fold.test_rows])
        fed = np.array([row_of[summary_row.tobytes()] for summary_row in received[:, : summary.shape[1]]])
        assert 30 <= len(fed) <= 40  # at most relief_max_rows, drawn per class
        assert set(fed) <= set(fold.train_rows.tolist())
        assert not set(fed) & set(fold.test_rows.tolist())
        assert sorted(fed.tolist()) == sorted(fold.relief_rows.tolist())
    # Leave-one-subject-out: each test fold is one subject, absent from its training rows.
    splits, scheme = training._splits(data.groups, "loao")
    assert len(splits) == 5 and scheme.startswith("leave-one-subject-out")
    for train_rows, test_rows in splits:
        assert len(set(data.groups[test_rows])) == 1
        assert data.groups[test_rows][0] not in set(data.groups[train_rows])


def test_cnn_learns_a_synthetic_temporal_task_and_a_seed_reproduces_it() -> None:
    data = training.synthetic_data(n_subjects=4, clips_per_class=4, windows_per_clip=5, seed=0)
    config = training.TrainConfig(
        network=NetworkConfig(filters=(16, 32), epochs=8, batch_size=16, learning_rate=1e-2, patience=4),
        n_select=3, relief_max_rows=150,
    )  # fmt: skip
    first = training.cross_validate(data, folds=2, config=config, seed=0)
    window, clip_level = first.scores["window"], first.scores["clip"]
    assert window["accuracy"] >= 0.9 and window["uar"] >= 0.9 and window["macro_f1"] >= 0.9, window
    assert clip_level["accuracy"] >= 0.9, clip_level
    for fold in first.folds:  # ReliefF keeps the two channels that carry the patterns
        assert {"S0_r", "S1_r"} <= set(fold.selection.channels)
    second = training.cross_validate(data, folds=2, config=config, seed=0)
    assert second.metrics["pooled"] == first.metrics["pooled"]
    np.testing.assert_allclose(
        np.concatenate([f.proba for f in second.folds]), np.concatenate([f.proba for f in first.folds]), atol=1e-6
    )


def _refusal(model_dir: Path, **kwargs: Any) -> str:
    with pytest.raises(ModelError) as info:
        load_model(model_dir, **kwargs)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(model_dir))
    return message


def test_a_model_that_does_not_fit_is_refused_with_one_line(trained: dict[str, Any], tmp_path: Path) -> None:
    source = trained["model_dir"]

    def copy(name: str) -> Path:
        return Path(shutil.copytree(source, tmp_path / name))

    older = copy("older")
    meta = json.loads((older / "meta.json").read_text())
    meta["aupipe_version"] = "0.0.1"
    (older / "meta.json").write_text(json.dumps(meta))
    assert "trained with aupipe 0.0.1, this is aupipe" in _refusal(older)

    assert "trained with mapping 'micro_emotions'" in _refusal(copy("mapping"), mapping="basic_emotions")
    assert "trained on 500 ms windows, this run uses 300 ms" in _refusal(source, window_ms=300)

    renamed = copy("features")
    for name in ("features.json", "normalization.json"):
        content = json.loads((renamed / name).read_text())
        content["channels"][0] = "AU99_r"
        (renamed / name).write_text(json.dumps(content))
    assert "AU99_r" in _refusal(renamed)

    missing = copy("missing")
    (missing / "labels.json").unlink()
    assert "missing labels.json" in _refusal(missing)

    damaged = copy("damaged")
    (damaged / "model.keras").write_bytes(b"not a keras file")
    assert "cannot load the network" in _refusal(damaged)

    # Tables that do not fit a good model: missing feature columns, other window lengths.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", aupipe.AupipeWarning)
        result = aupipe.analyze(clip("NEU"), window_ms=300)
    model = load_model(source)
    with pytest.raises(ModelError, match="trained on 500 ms windows, these are 300 ms; run with --window-ms 500"):
        model.predict_windows(result.frames, result.windows)
    channel = model.spec.channels[0]
    windows_500 = label_windows(compute_windows(result.frames), aupipe.load_mapping())
    with pytest.raises(ModelError, match=f"lacks the model's feature columns {channel}"):
        model.predict_windows(result.frames.drop(columns=[channel]), windows_500)
    assert len(model.predict_windows(result.frames, windows_500)) == len(windows_500)


def test_resampling_interpolates_in_time_inside_each_window_only() -> None:
    times = np.arange(0.0, 1000.0, 40.0)  # 25 fps
    frames = pd.DataFrame({"time_ms": times, "face_found": True, "AU12_r": times / 100.0})
    frames.loc[5:7, "face_found"] = False  # a gap, bridged by interpolation
    frames.loc[5:7, "AU12_r"] = np.nan
    starts, ends = np.array([0.0, 700.0, 2000.0, 190.0]), np.array([400.0, 1100.0, 2400.0, 310.0])
    X, ok = resample_windows(frames, starts, ends, ["AU12_r"], 4)
    assert ok.tolist() == [True, True, False, False]  # no frame / only faceless frames inside
    np.testing.assert_allclose(X[0, :, 0], [0.5, 1.5, 2.5, 3.5])  # centres 50..350 ms; 250 ms bridges the gap
    np.testing.assert_allclose(X[1, :, 0], [7.5, 8.5, 9.5, 9.6])  # after the last frame (960 ms) it is held
    assert (X[2:] == 0).all()


def test_cli_run_with_the_model_streams_the_same_probabilities(trained: dict[str, Any], tmp_path: Path) -> None:
    import subprocess
    import sys

    out = tmp_path / "w.csv"
    command = [
        sys.executable,
        "-m",
        "aupipe",
        "run",
        str(clip("HAP")),
        "-o",
        str(out),
        "--model",
        str(trained["model_dir"]),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(out)
    prob_columns = [f"prob_{label}" for label in CREMAD]
    assert {*prob_columns, "model_label", "final_label"} <= set(table.columns)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", aupipe.AupipeWarning)
        api = aupipe.analyze(clip("HAP"), model=trained["model_dir"]).windows
    assert table["final_label"].tolist() == api["final_label"].tolist()
    np.testing.assert_allclose(table[prob_columns].to_numpy(), api[prob_columns].to_numpy(), atol=1e-4)
    missing = subprocess.run([*command[:-1], str(tmp_path / "no_model")], capture_output=True, text=True, check=False)
    assert missing.returncode == 5 and missing.stderr.count("\n") == 1 and "model folder not found" in missing.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.csv"]  # no temporary .w.csv.*.part left
