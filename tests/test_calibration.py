"""AU calibration: the shipped file, `aupipe calibrate` on the bundled clips, its bad inputs, the neutral."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import aupipe
from aupipe.signal import aus
from aupipe.signal import calibration
from aupipe.cli import main as cli
from aupipe.learning.calibration_fit import raw_frames

from .conftest import SAMPLES, clip, clip_frames

VIDEOS = [clip(e) for e in ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")] + [SAMPLES / "single_face.mp4"]


@pytest.fixture(scope="module")
def raws(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    """Raw frame tables of the seven bundled face clips (the landmark stage, run once)."""
    cache = tmp_path_factory.mktemp("cache")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", aupipe.AupipeWarning)
        return {v.stem: raw_frames(v, cache) for v in VIDEOS}


def known_codes(raw: pd.DataFrame) -> np.ndarray:
    """Synthetic 'FACS codes' for AU12: a known, saturating monotone transform of the smile blendshape."""
    smile = raw[["bs_mouthSmileLeft", "bs_mouthSmileRight"]].mean(axis=1).to_numpy()
    return np.round(5.0 * (1.0 - np.exp(-3.0 * smile)), 3)


def write_codes(folder: Path, raws: dict[str, pd.DataFrame], column: str = "AU12") -> Path:
    folder.mkdir(exist_ok=True)
    for stem, raw in raws.items():
        codes = np.where(raw["face_found"], known_codes(raw), np.nan)
        pd.DataFrame({"frame": raw["frame"] + 1, column: codes}).to_csv(folder / f"{stem}.csv", index=False)
    return folder


def test_shipped_calibration_loads_and_is_monotone() -> None:
    shipped = calibration.load_calibration()
    assert shipped.population is not None and "openface" in json.dumps(shipped.meta).lower()
    fitted = {au: m for au, m in shipped.maps.items() if m.form != "hand"}
    assert {"AU12", "AU14"} <= set(fitted), "the fit dropped the AUs that held up on held-out people"
    for au, m in fitted.items():
        assert all(w >= 0 for w in m.weights), au
        assert m.intercept <= 0, f"{au}: a neutral face must read 0"
        if m.form == "ramp":
            assert all(c >= 0 for c in m.ramp[:-1]), au
    # monotone in every signal: raising any one signal never lowers the intensity
    rng = np.random.default_rng(0)
    for au, m in fitted.items():
        base = rng.uniform(-0.05, 1.0, (200, len(m.signals)))
        for j in range(len(m.signals)):
            raised = base.copy()
            raised[:, j] += 0.1
            assert (calibration.apply_map(m, raised) >= calibration.apply_map(m, base) - 1e-9).all(), au


def test_calibrate_recovers_a_known_monotone_transform(tmp_path: Path, raws: dict[str, pd.DataFrame], capsys) -> None:
    reference = write_codes(tmp_path / "codes", raws)
    out = tmp_path / "cal"
    code = cli.main(["calibrate", *map(str, VIDEOS), "--reference", str(reference), "-o", str(out), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "AU12" in printed and "chosen" in printed
    agreement = pd.read_csv(out / "agreement.csv")
    chosen = agreement[agreement["chosen"]]
    assert list(chosen["au"]) == ["AU12"] and chosen["form"].iloc[0] != "hand"
    assert chosen["r"].iloc[0] > 0.97  # held out over clips
    settings = aus.AuSettings(calibration=str(out), smooth=False)
    for stem, raw in raws.items():
        predicted = aus.compute_aus(raw, settings)[0]["AU12_r"].to_numpy()
        truth = known_codes(raw)
        face = np.isfinite(predicted)
        assert np.corrcoef(predicted[face], truth[face])[0, 1] > 0.98, stem
        assert np.abs(predicted[face] - truth[face]).mean() < 0.2, stem


def test_run_uses_a_lab_calibration(tmp_path: Path, raws: dict[str, pd.DataFrame]) -> None:
    out = tmp_path / "cal"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", aupipe.AupipeWarning)
        aupipe.calibrate(VIDEOS, write_codes(tmp_path / "codes", raws), out)
        lab = aupipe.analyze(clip("HAP"), au_calibration=out).frames["AU12_r"].to_numpy()
        shipped = aupipe.analyze(clip("HAP")).frames["AU12_r"].to_numpy()
    truth = known_codes(raws["1001_DFA_HAP_XX"])
    face = np.isfinite(lab)
    assert np.abs(lab[face] - truth[face]).mean() < np.abs(shipped[face] - truth[face]).mean()


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


@pytest.mark.parametrize(
    "case, expected",
    [
        ("out_of_range", "range"),
        ("no_au", "AU"),
        ("too_long", "frames"),
        ("missing", "1001_DFA_ANG_XX"),
    ],
)
def test_bad_reference_gets_one_line(tmp_path: Path, case: str, expected: str, capsys) -> None:
    reference = tmp_path / "ref"
    reference.mkdir()
    n = 61
    for video in VIDEOS[:2]:
        table = pd.DataFrame({"frame": np.arange(1, n + 1), "AU12": 1.0})
        if case == "out_of_range":
            table.loc[5, "AU12"] = 7.0
        elif case == "no_au":
            table = table.rename(columns={"AU12": "smile"})
        elif case == "too_long":
            table = pd.DataFrame({"frame": np.arange(1, 500), "AU12": 1.0})
        table.to_csv(reference / f"{video.stem}.csv", index=False)
    if case == "missing":
        (reference / f"{VIDEOS[0].stem}.csv").unlink()
    out = tmp_path / "out"
    code = cli.main(["calibrate", *map(str, VIDEOS[:2]), "--reference", str(reference), "-o", str(out), "--quiet"])
    assert code == 2
    assert expected in _one_error_line(capsys)
    assert not out.exists()


def test_calibrate_refuses_a_file_as_output_folder(tmp_path: Path, capsys) -> None:
    target = tmp_path / "taken.csv"
    target.write_text("keep me\n")
    code = cli.main(["calibrate", str(VIDEOS[0]), "--reference", str(tmp_path), "-o", str(target), "--quiet"])
    assert code in (2, 4)
    _one_error_line(capsys)
    assert target.read_text() == "keep me\n"


def test_run_with_a_missing_calibration_fails_before_any_output(tmp_path: Path, capsys) -> None:
    windows = tmp_path / "w.csv"
    code = cli.main(
        ["run", str(clip("NEU")), "-o", str(windows), "--au-calibration", str(tmp_path / "nope"), "--quiet"]
    )
    assert code == 2
    assert "calibration" in _one_error_line(capsys)
    assert not windows.exists()


def test_short_expressive_clip_leans_on_the_population_neutral(raws: dict[str, pd.DataFrame]) -> None:
    hap = aus.compute_aus(raws["1001_DFA_HAP_XX"])[1]
    assert hap is not None and hap.confidence < 0.5 and "population" in hap.source
    neutral_range = aus.compute_aus(raws["1001_DFA_HAP_XX"], aus.AuSettings(neutral_range_s=(0.0, 2.0)))[1]
    assert neutral_range is not None and "population" not in neutral_range.source
    assert set(hap.table()["kind"]) == {"blendshape_au", "geometry", "blendshape"}


def test_no_single_calibration_span_creates_a_d_level_au(raws: dict[str, pd.DataFrame]) -> None:
    """Whatever span of a clip is taken as neutral, a face at the population neutral reads below D there."""
    population = calibration.load_calibration().population
    assert population is not None
    for stem, raw in raws.items():
        for start_s in (0.0, 0.5, 1.0):
            settings = aus.AuSettings(neutral_range_s=(start_s, start_s + 0.5))
            baseline = aus.compute_aus(raw, settings)[1]
            assert baseline is not None
            # the population-neutral face, measured against this baseline
            face = raw.iloc[:1].copy()
            for name in aus.MEASURES:
                face[f"g_{name}"] = population.geometry[name]
            for name in population.blendshape.index:
                face[f"bs_{name}"] = population.blendshape[name]
            intensity = aus.compute_aus(face, aus.AuSettings(smooth=False), baseline=baseline)[0]
            assert float(intensity[aus.au_columns()].max(axis=1).iloc[0]) < 4.0, (stem, start_s)


def test_a_raised_brow_neutral_does_not_make_a_frown(raws: dict[str, pd.DataFrame]) -> None:
    """HAP's least expressive frames have the brows raised; its first frames (a slight frown, as in NEU
    and ANG) must read below B (issue 13), and AU04's neutral never sits on the frowning side of the
    population's by more than the confidence allows. A given neutral is kept as it is."""
    raw = raws["1001_DFA_HAP_XX"]
    frames, baseline = aus.compute_aus(raw)
    assert baseline is not None and baseline.confidence < 0.5
    assert float(frames["AU04_r"].iloc[:15].max()) < 2.0
    # one-sided: brows above the population's keep only `confidence` of the difference, a lower
    # browDown likewise; the other side, other signals and the left-right difference are untouched
    neutral = pd.Series({"brow_y_right": 0.36, "brow_y_left": 0.34, "browDownLeft": 0.0, "browDownRight": 0.02,
                         "brow_inner_y_right": 0.5})  # fmt: skip
    population = pd.Series({"brow_y_right": 0.32, "brow_y_left": 0.32, "browDownLeft": 0.05, "browDownRight": 0.05,
                            "brow_inner_y_right": 0.4})  # fmt: skip
    moved = aus._one_sided(neutral, population, 0.25)
    assert moved[["brow_y_right", "brow_y_left"]].mean() == pytest.approx(0.32 + 0.25 * 0.03)
    assert moved["brow_y_right"] - moved["brow_y_left"] == pytest.approx(0.02)
    assert moved[["browDownLeft", "browDownRight"]].mean() == pytest.approx(0.05 - 0.25 * 0.04)
    assert moved["brow_inner_y_right"] == 0.5
    relaxed = population + pd.Series({"brow_y_right": -0.01, "brow_y_left": -0.01, "browDownLeft": 0.01,
                                      "browDownRight": 0.01, "brow_inner_y_right": 0.0})  # fmt: skip
    assert aus._one_sided(relaxed, population, 0.25).equals(relaxed)  # lowered brows: nothing to undo
    given = aus.compute_aus(raw, aus.AuSettings(neutral_range_s=(0.0, 0.5)))[1]
    assert given is not None
    in_range = raw["time_ms"].to_numpy() <= 500.0
    expected = raw.loc[in_range, "g_brow_y_right"].median()
    assert given.geometry["brow_y_right"] == pytest.approx(expected)


def test_keep_hand_reports_but_does_not_fit(tmp_path: Path, raws: dict[str, pd.DataFrame], capsys) -> None:
    reference = write_codes(tmp_path / "codes", raws)
    out = tmp_path / "cal"
    code = cli.main(["calibrate", *map(str, VIDEOS), "--reference", str(reference), "-o", str(out), "--quiet",
                     "--keep-hand", "au12"])  # fmt: skip
    assert code == 0
    agreement = pd.read_csv(out / "agreement.csv")
    assert set(agreement["form"]) == {"hand", "linear", "ramp"}  # still cross-validated and reported
    assert agreement.loc[agreement["chosen"], "form"].tolist() == ["hand"]
    assert calibration.load_calibration(str(out)).maps["AU12"].form == "hand"
    capsys.readouterr()
    code = cli.main(["calibrate", str(VIDEOS[0]), "--reference", str(reference), "-o", str(tmp_path / "x"),
                     "--keep-hand", "AU99"])  # fmt: skip
    assert code == 2 and "AU99" in _one_error_line(capsys)


def _hap_face() -> tuple[np.ndarray, np.ndarray]:
    """One RGB frame of the HAP sample and its landmarks (pixels), from the direct landmarker."""
    import cv2

    from aupipe.signal import landmarks

    rgb = cv2.cvtColor(clip_frames("HAP")[20], cv2.COLOR_BGR2RGB)
    with landmarks.open_landmarker(landmarks.LandmarkSettings()) as landmarker:
        faces = landmarker.detect_rgb(rgb, 0.0)
    return rgb, faces[0].points_px


def test_face_hog_follows_the_face_not_the_frame() -> None:
    """The HOG is read from the face aligned on its rigid landmarks: moving and scaling the picture
    barely changes it; another face position within the frame, with the landmarks, is the same face."""
    import cv2

    from aupipe.signal.appearance import HOG_DIMS, face_hog

    rgb, points = _hap_face()
    hog = face_hog(rgb, points)
    assert hog.shape == (HOG_DIMS,) and hog.dtype == np.float32 and (hog >= 0).all() and hog.std() > 0.01
    shift = np.array([23.0, -11.0])
    moved = cv2.warpAffine(rgb, np.array([[1.0, 0.0, shift[0]], [0.0, 1.0, shift[1]]]), rgb.shape[1::-1],
                           borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
    scaled = cv2.resize(rgb, None, fx=1.5, fy=1.5, interpolation=cv2.INTER_LINEAR)
    assert np.corrcoef(hog, face_hog(moved, points[:, :2] + shift))[0, 1] > 0.98
    assert np.corrcoef(hog, face_hog(scaled, points[:, :2] * 1.5))[0, 1] > 0.9
    wrong = face_hog(rgb, points[:, :2] + np.array([60.0, 0.0]))  # landmarks that are not on the face
    assert np.corrcoef(hog, wrong)[0, 1] < 0.9


def test_region_textures_equal_opencv_sobel_per_patch_and_fhog_paths_agree() -> None:
    """The textures are computed for all patches at once; on a real face they equal OpenCV's own
    3 x 3 Sobel and L1 norm of each warped patch (``region_patches``), value for value. FHOG's integer path (uint8
    crops) and its float path give the same descriptor."""
    import cv2

    from aupipe.signal import appearance
    from aupipe.signal.normalize import face_width

    rgb, points = _hap_face()
    width_px = float(face_width(points[None])[0])
    texture = appearance.region_texture(rgb, points, width_px)
    size = appearance.PATCH_PX
    patches = appearance.region_patches(rgb, points, width_px)
    for k in range(len(appearance.REGIONS)):
        grey = cv2.cvtColor(patches[k * size:(k + 1) * size], cv2.COLOR_RGB2GRAY).astype(np.float32)
        level = (cv2.norm(grey, cv2.NORM_L1) / size**2 + 1.0) * size**2
        expected = [cv2.norm(cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3), cv2.NORM_L1) / level,
                    cv2.norm(cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3), cv2.NORM_L1) / level]  # fmt: skip
        np.testing.assert_allclose(texture[2 * k:2 * k + 2], expected, rtol=1e-6)
    assert texture.std() > 0.01  # the patches differ: not all one value
    face = appearance.aligned_face(rgb, points)
    assert face.dtype == np.uint8
    np.testing.assert_array_equal(appearance.fhog(face), appearance.fhog(face.astype(np.float32)))


def test_fhog_reads_gradient_orientation_and_the_mask_keeps_only_the_face() -> None:
    """Felzenszwalb HOG: a left-to-right ramp puts its energy in orientation 0, the mirrored ramp in
    orientation 9 (the opposite sign), both in the same sign-free orientation; a flat picture has
    none. The aligned face is zero in the crop's corners (outside the face) and not at its centre."""
    from aupipe.signal.appearance import FACE_PX, FHOG_CHANNELS, HOG_DIMS, aligned_face, fhog

    ramp = np.repeat(np.repeat(np.linspace(0, 200, FACE_PX)[None, :, None], FACE_PX, 0), 3, 2).astype(np.uint8)
    cells = int(np.sqrt(HOG_DIMS // FHOG_CHANNELS))
    rising = fhog(ramp).reshape(cells, cells, FHOG_CHANNELS)
    falling = fhog(ramp[:, ::-1]).reshape(cells, cells, FHOG_CHANNELS)
    assert (rising[..., :18].argmax(axis=-1) == 0).all() and (falling[..., :18].argmax(axis=-1) == 9).all()
    assert (rising[..., 18:27].argmax(axis=-1) == 0).all() and (falling[..., 18:27].argmax(axis=-1) == 0).all()
    assert rising[..., 0].min() > 10 * rising[..., 1:18].max()
    assert np.allclose(rising[..., 18:], falling[..., 18:], atol=1e-5)
    assert not fhog(np.full_like(ramp, 90)).any()
    rgb, points = _hap_face()
    face = aligned_face(rgb, points)
    assert face.shape == (FACE_PX, FACE_PX, 3) and face.dtype == np.uint8
    corners = np.concatenate([face[:6, :6], face[:6, -6:], face[-6:, :6], face[-6:, -6:]])
    assert not corners.any() and face[FACE_PX // 2 - 5 : FACE_PX // 2 + 5, FACE_PX // 2 - 5 : FACE_PX // 2 + 5].min() > 0


def test_mirrored_descriptor_is_the_descriptor_of_the_flipped_picture() -> None:
    """The fit's mirror copies (``mirrored_descriptor``) stand for flipped pictures: against the
    descriptor measured on the flipped frame (its own landmarks and blendshapes), the HOG agrees
    far better than the unmirrored one, the mesh within 0.03 face widths;
    the blendshapes' sides swap."""
    import cv2

    from aupipe.signal import landmarks
    from aupipe.learning.mirror import mirrored_descriptor
    from aupipe.signal.appearance import HOG_DIMS, N_MESH_POINTS, face_descriptor, face_hog
    from aupipe.signal.landmarks import BLENDSHAPE_NAMES
    from aupipe.signal.normalize import normalize_mesh

    rgb = cv2.cvtColor(clip_frames("HAP")[20], cv2.COLOR_BGR2RGB)
    flipped = np.ascontiguousarray(rgb[:, ::-1])
    found = []
    for picture in (rgb, flipped):  # a landmarker each: no tracking from one picture into the other
        with landmarks.open_landmarker(landmarks.LandmarkSettings()) as landmarker:
            found.append(landmarker.detect_rgb(picture, 0.0)[0])
    face, face_flipped = found

    def descriptor(picture: np.ndarray, found) -> np.ndarray:
        points = np.asarray(found.points_px, dtype=np.float64)
        return face_descriptor(face_hog(picture, points)[None], normalize_mesh(points[None]), np.asarray(found.blendshapes)[None])

    mine, theirs = descriptor(rgb, face), descriptor(flipped, face_flipped)
    mirrored = mirrored_descriptor(mine)
    hog_r = np.corrcoef(mirrored[0, :HOG_DIMS], theirs[0, :HOG_DIMS])[0, 1]
    assert hog_r > 0.9 and hog_r > np.corrcoef(mine[0, :HOG_DIMS], theirs[0, :HOG_DIMS])[0, 1] + 0.05
    mesh = slice(HOG_DIMS, HOG_DIMS + 2 * N_MESH_POINTS)
    assert np.abs(mirrored[0, mesh] - theirs[0, mesh]).max() < 0.03
    # blendshapes: sides swapped (MediaPipe's own scores of a flipped face keep a side bias, so not compared)
    left, right = HOG_DIMS + 2 * N_MESH_POINTS + np.array([BLENDSHAPE_NAMES.index(f"mouthSmile{s}") for s in ("Left", "Right")])
    assert mirrored[0, left] == mine[0, right] and mirrored[0, right] == mine[0, left] and mine[0, left] != mine[0, right]
    assert np.array_equal(mirrored_descriptor(mirrored), mine)


def test_face_form_is_the_face_scores_own_prediction() -> None:
    from aupipe.learning.calibration_fit import fit_map

    x, y, w = np.ones((5, 3)), np.ones(5), np.ones(5)
    m = fit_map("face", x, y, w, ("bs:mouthSmileLeft", "a:face_AU12", "ad:faced_AU12"))
    assert (m.form, m.signals, m.weights, m.intercept) == ("linear", ("a:face_AU12", "ad:faced_AU12"), (1.0, 1.0), 0.0)
    assert fit_map("face", x[:, :2], y, w, ("bs:jawOpen", "ad:faced_AU26")).form == "hand"  # change only: no face form


def test_a_few_extreme_frames_do_not_fit_a_cliff_in_the_ramp() -> None:
    """Segments few frames reach share the slope below them: 3 outliers of 2,000 frames at z 4.5
    coded 5 must not lift the ramp near its top (the shipped AU26 once rose 546 per z unit there)."""
    from aupipe.learning.calibration_fit import fit_ramp, ramp_segments

    rng = np.random.default_rng(1)
    z = np.concatenate([rng.uniform(0.0, 2.8, 1997), [4.5, 4.6, 4.7]])
    y = np.concatenate([0.8 * z[:1997] + rng.normal(0.0, 0.05, 1997), [5.0, 5.0, 5.0]])
    assert ramp_segments(z) == [(0, 1), (1, 2), (2, 3), (3, 5)]
    ramp = np.asarray(fit_ramp(z, y, np.ones_like(z)))
    slopes = ramp[:-1] / np.diff(calibration.RAMP_KNOTS)
    assert np.allclose(slopes[:3], 0.8, atol=0.05), slopes  # the supported part: the data's slope
    assert slopes[3] == pytest.approx(slopes[4]), "the unsupported top is one straight piece"
    assert slopes[4] < 1.5, f"a cliff fitted on 3 frames: {slopes}"
    # enough frames at the top: the top segment gets its own slope again
    many = np.concatenate([z, np.full(200, 4.5)])
    assert ramp_segments(many)[-1] == (4, 5)


def test_shipped_ramps_have_no_cliff() -> None:
    for au, m in calibration.load_calibration().maps.items():
        if m.form == "ramp":
            slopes = np.asarray(m.ramp[:-1]) / np.diff(calibration.RAMP_KNOTS)
            assert slopes.max() < 6.0, f"{au}: ramp slopes {np.round(slopes, 2)} per z unit"


def _run_with_calibration(tmp_path: Path, data: dict) -> tuple[int, bool]:
    """``aupipe run`` on the NEU sample under the calibration ``data`` (written to a folder):
    its exit code and whether it wrote the windows file."""
    folder = tmp_path / "calibration"
    folder.mkdir()
    (folder / "au_calibration.json").write_text(json.dumps(data))
    code = cli.main(["run", str(clip("NEU")), "-o", str(tmp_path / "w.csv"), "--au-calibration", str(folder)])
    return code, (tmp_path / "w.csv").exists()


def test_face_scores_of_an_earlier_descriptor_get_one_line(tmp_path: Path, capsys) -> None:
    """A version-2 calibration's face scores read the old descriptor: one line saying to refit, nothing written."""
    data = calibration.load_calibration().to_json()
    data["version"] = 2
    code, written = _run_with_calibration(tmp_path, data)
    assert code != 0 and "aupipe calibrate" in _one_error_line(capsys)
    assert not written


def test_face_score_directions_round_trip_and_bad_ones_get_one_line(tmp_path: Path, capsys) -> None:
    shipped = calibration.load_calibration()
    assert shipped.appearance is not None, "the shipped calibration has no face-score directions"
    data = shipped.to_json()
    again = calibration.from_json(json.loads(json.dumps(data)), "copy")
    for name in ("mean", "raw", "delta"):
        assert np.array_equal(getattr(again.appearance, name), getattr(shipped.appearance, name))
    assert again.appearance.aus == shipped.appearance.aus
    data["appearance"]["raw"] = data["appearance"]["raw"][:-8]  # a truncated array
    code, written = _run_with_calibration(tmp_path, data)
    assert code != 0 and "appearance" in _one_error_line(capsys)
    assert not written


def test_frame_table_carries_the_hog_scores_of_the_calibration(analysed: dict) -> None:
    frames = analysed["HAP"].frames
    shipped = calibration.load_calibration()
    for column in shipped.appearance.columns():
        assert column in frames.columns
        assert np.isfinite(frames.loc[frames["face_found"], column]).all()
    assert not any(c.startswith("hog_") for c in frames.columns), "the raw HOG stays out of the outputs"


def test_refit_check_compares_numbers_not_bytes() -> None:
    """``scripts/fit_au_calibration.py --check``: last-bit float32 noise of another CPU's BLAS
    passes, a moved map weight, a changed form or a moved face direction does not."""
    import base64
    import copy
    import importlib.util

    spec = importlib.util.spec_from_file_location("fit_script", Path(__file__).parents[1] / "scripts" / "fit_au_calibration.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    shipped = json.loads(script.SHIPPED.read_text())

    def moved(key: str, index: int, by: float) -> dict:
        out = copy.deepcopy(shipped)
        values = np.frombuffer(base64.b64decode(out["appearance"][key]), dtype="<f4").copy()
        values[index] += by
        out["appearance"][key] = base64.b64encode(values.tobytes()).decode("ascii")
        return out

    assert script.differences(copy.deepcopy(shipped), shipped) == []
    assert script.differences(moved("raw", 0, 3e-15), shipped) == []
    found = script.differences(moved("delta", 7, 0.05), shipped)
    assert len(found) == 1 and found[0].startswith("/appearance/delta")
    weight = copy.deepcopy(shipped)
    au, first = next((a, m) for a, m in weight["aus"].items() if m["weights"])
    first["weights"][0] += 1e-3
    form = copy.deepcopy(shipped)
    form["aus"][au]["form"] = "hand" if form["aus"][au]["form"] != "hand" else "linear"
    for changed in (weight, form):
        found = script.differences(changed, shipped)
        assert len(found) == 1 and f"/aus/{au}/" in found[0]
