"""The direct landmark backend (docs/backends.md): the bundled networks run by aupipe agree with
MediaPipe Tasks on real footage, on both runtimes, one stream or several lanes at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from .conftest import SAMPLES, clip

pytest.importorskip("ai_edge_litert")


def landmark_run(path: Path, **settings: object) -> object:
    """The landmark stage alone over a clip: one LandmarkBatch of every frame."""
    from aupipe.signal import landmarks, video

    chosen = landmarks.LandmarkSettings(**settings)  # type: ignore[arg-type]
    with landmarks.open_landmarker(chosen) as landmarker:
        batches = [b for _, b in landmarks.detect_batches(landmarker, video.iter_frames(path), 32)]
    return landmarks.LandmarkBatch(**{
        name: np.concatenate([getattr(b, name) for b in batches])
        for name in ("frame", "time_ms", "face_found", "landmarks_px", "blendshapes", "transform", "face_box_px")
    })  # fmt: skip


@pytest.fixture(scope="module")
def both_backends() -> tuple[object, object]:
    path = SAMPLES / "single_face.mp4"
    return landmark_run(path, backend="mediapipe"), landmark_run(path, backend="direct")


def test_direct_landmarks_and_blendshapes_match_mediapipe(both_backends: tuple) -> None:
    """Far inside issue 20's bar (1.5 px, 0.03): MediaPipe's own region rule, border and smoothing
    give ~0.01 px here; losing any of them costs 0.15-0.6 px, which this test would catch."""
    reference, direct = both_backends
    assert reference.face_found.all() and direct.face_found.all()
    distance_px = np.linalg.norm(reference.landmarks_px[:, :, :2] - direct.landmarks_px[:, :, :2], axis=2).mean(axis=1)
    assert distance_px.mean() < 0.1 and np.percentile(distance_px, 99) < 0.5, distance_px
    assert np.abs(reference.blendshapes - direct.blendshapes).mean() < 0.005


def test_direct_head_pose_is_mediapipes(both_backends: tuple) -> None:
    from aupipe.signal.normalize import head_pose_deg

    reference, direct = both_backends
    difference = np.abs(head_pose_deg(reference.transform) - head_pose_deg(direct.transform))
    assert difference.mean(axis=0).max() < 0.2 and difference.max() < 1.0, difference.mean(axis=0)  # MediaPipe's geometry, redone


def test_aus_of_the_two_backends_correlate() -> None:
    import aupipe
    from aupipe.chain.settings import PipelineSettings
    from aupipe.signal.landmarks import LandmarkSettings

    runs = [
        aupipe.analyze(clip("ANG"), settings=PipelineSettings(landmarks=LandmarkSettings(backend=b))).frames
        for b in ("mediapipe", "direct")
    ]  # fmt: skip
    rs = []
    for column in [c for c in runs[0].columns if c.startswith("AU") and c.endswith("_r")]:
        a, b = runs[0][column].to_numpy(float), runs[1][column].to_numpy(float)
        if a.std() > 0.05:
            rs.append(np.corrcoef(a, b)[0, 1])
    assert len(rs) > 10 and min(rs) >= 0.98, rs


def test_onnx_runtime_lanes_equal_each_stream_alone() -> None:
    """The GPU path's code on ONNX Runtime's CPU provider: two clips stepped together as lanes (one
    mesh call for both) give what each gives alone, and what LiteRT gives."""
    pytest.importorskip("onnxruntime")
    from aupipe.signal import landmarks, video
    from aupipe.signal.direct import DirectLandmarker

    paths = [clip("HAP"), clip("SAD")]
    streams = [[f for f, _ in zip(video.iter_frames(p), range(30))] for p in paths]
    model = landmarks.model_bytes()
    with DirectLandmarker(model, runtime="onnx") as together:
        lanes = [together.detect_lanes([(0, a.rgb, a.time_ms), (1, b.rgb, b.time_ms)]) for a, b in zip(*streams)]
    for lane, frames in enumerate(streams):
        with DirectLandmarker(model, runtime="onnx") as alone, DirectLandmarker(model, runtime="litert") as lite:
            for step, frame in enumerate(frames):
                single = alone.detect_rgb(frame.rgb, frame.time_ms)[0]
                lite_face = lite.detect_rgb(frame.rgb, frame.time_ms)[0]
                np.testing.assert_allclose(lanes[step][lane][0].points_px, single.points_px, atol=1e-3)
                assert np.abs(lite_face.points_px - single.points_px)[:, :2].mean() < 0.05


def test_no_face_and_a_face_leaving_and_returning() -> None:
    """No face: the detector finds none; a face cut out for 10 frames is lost and found again."""
    from aupipe.signal import landmarks, video
    from aupipe.signal.direct import DirectLandmarker

    frames = [f.rgb for f, _ in zip(video.iter_frames(clip("NEU")), range(40))]
    with DirectLandmarker(landmarks.model_bytes()) as landmarker:
        found = []
        for i, rgb in enumerate(frames):
            shown = np.zeros_like(rgb) if 15 <= i < 25 else rgb
            found.append(len(landmarker.detect_rgb(shown, i * 33.3)))
    assert found[:15] == [1] * 15 and found[15:25] == [0] * 10 and found[26:] == [1] * 14
    nothing = landmark_run(SAMPLES / "no_face.mp4")
    assert not nothing.face_found.any()


def test_region_crop_and_projection_invert_each_other() -> None:
    from aupipe.signal.direct import project, region_affine

    regions = np.array([[320.0, 180.0, 200.0, 0.3], [100.0, 50.0, 90.0, -1.2]])
    affines = region_affine(regions)
    corners = np.array([[[0.0, 0.0, 0.0], [256.0, 256.0, 0.0], [128.0, 128.0, 10.0]]] * 2)
    image = project(corners, affines)
    np.testing.assert_allclose(image[:, 2, :2], regions[:, :2], atol=1e-4)  # crop centre = region centre
    np.testing.assert_allclose(np.linalg.norm(image[:, 1, :2] - image[:, 0, :2], axis=1), regions[:, 2] * np.sqrt(2), rtol=1e-5)
    np.testing.assert_allclose(image[:, 2, 2], 10.0 * regions[:, 2] / 256, rtol=1e-5)  # z scales like x


def test_command_line_backend_choices_and_mediapipe_stays_unloaded(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from aupipe.cli.main import main\n"
        f"code = main(['run', {str(clip('HAP'))!r}, '-o', {str(tmp_path / 'w.csv')!r}])\n"
        "print(code, 'mediapipe' in sys.modules, 'tensorflow' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.stdout.split() == ["0", "False", "False"], done.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "aupipe", "run", str(clip("HAP")), "-o", str(tmp_path / "x.csv"), "--device", "cuda"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == ["aupipe: error: --device cuda needs --runtime onnx"]
    assert not (tmp_path / "x.csv").exists()
