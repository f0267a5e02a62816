"""The ``speaking`` signal: real sentences and smiles, synthetic mouths, streaming, windows."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from aupipe import chain
from aupipe.signal import speech
from aupipe.signal import windows
from aupipe.errors import AupipeError

from .conftest import CREMAD, SAMPLES, clip


@pytest.fixture(scope="session")
def raw_tables() -> dict[str, pd.DataFrame]:
    """Raw frame tables (``stream_frames``, real model) of the six CREMA-D clips and single_face."""
    settings = chain.PipelineSettings(include_landmarks=False)
    paths = {emotion: clip(emotion) for emotion in CREMAD} | {"single_face": SAMPLES / "single_face.mp4"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            name: pd.concat(list(chain.stream_frames(path, settings)), ignore_index=True)
            for name, path in paths.items()
        }


def mouth_table(opening: np.ndarray, fps: float = 30.0, face: np.ndarray | None = None, jitter: float = 0.0,
                seed: int = 0) -> pd.DataFrame:  # fmt: skip
    """A frame table whose mouth opens by ``opening`` (n,) face widths of lip gap, with a little
    landmark noise; the jaw and ``jawOpen`` follow as on real faces. ``jitter``: uneven timestamps
    (a fraction of the frame step)."""
    rng = np.random.default_rng(seed)
    n = len(opening)
    step = 1000.0 / fps
    times = np.arange(n) * step + rng.uniform(-jitter, jitter, n) * step
    face = np.ones(n, bool) if face is None else face
    noise = rng.normal(0.0, 0.001, (3, n))
    table = pd.DataFrame({
        "frame": np.arange(n), "time_ms": times, "face_found": face,
        "g_lip_gap": 0.002 + opening + noise[0], "g_jaw_y": -0.60 - opening / 1.5 + noise[1],
        "bs_jawOpen": np.clip(opening / 0.3 + 10 * noise[2], 0.0, 1.0),
        "g_corner_y_left": -0.20 + noise[0] / 2, "g_corner_y_right": -0.20 + noise[1] / 2,
    })  # fmt: skip
    signals = [c for c in table.columns if c.startswith(("g_", "bs_"))]
    table.loc[~face, signals] = np.nan
    return table


def seconds(duration_s: float, fps: float) -> np.ndarray:
    return np.arange(int(round(duration_s * fps))) / fps


def syllables(rate_hz: float, fps: float, duration_s: float = 4.0, depth: float = 0.04) -> np.ndarray:
    """The mouth opening and closing ``rate_hz`` times a second by up to ``depth`` face widths."""
    return depth * (1 - np.cos(2 * np.pi * rate_hz * seconds(duration_s, fps))) / 2


def in_chunks(frames: pd.DataFrame, size: int) -> tuple[pd.DataFrame, int]:
    """``step`` fed ``size`` rows at a time, then flushed; and the most rows it ever held."""
    state, parts, held = speech.SpeechState(), [], 0
    for start in range(0, len(frames), size):
        out, state = speech.step(state, frames.iloc[start : start + size])
        parts.append(out)
        held = max(held, len(state.context) if state.context is not None else 0)
    out, state = speech.step(state, None, final=True)
    return pd.concat([*parts, out], ignore_index=True), held


def test_a_spoken_sentence_is_speaking_and_its_silent_end_is_not(raw_tables: dict[str, pd.DataFrame]) -> None:
    for emotion in CREMAD:
        out = speech.speaking_table(raw_tables[emotion])
        assert out["face_found"].all()
        times = out["time_ms"].to_numpy() - out["time_ms"].iloc[0]
        speaking = out["speaking"].to_numpy()
        assert speaking.mean() >= 0.5, emotion  # "Don't forget a jacket" fills about 1.4 of 2 s
        assert speaking[times < 1200].mean() >= 0.8, emotion
        assert (speaking[times > times[-1] - 300] == 0).all(), emotion  # the mouth rests after the sentence
        level = out["speech_level"].to_numpy()
        assert np.nanmax(level) > 3 * speech.SpeechSettings().min_level_fw
    neutral = speech.speaking_table(raw_tables["NEU"])["speaking"]
    assert neutral.mean() >= 0.65


def test_a_held_smile_is_not_speaking(raw_tables: dict[str, pd.DataFrame]) -> None:
    out = speech.speaking_table(raw_tables["single_face"])  # neutral, then a broad smile with parted lips
    assert out["g_lip_gap"].max() > 0.08  # the lips do part
    assert out["speaking"].sum() == 0


@pytest.mark.parametrize("fps", [15.0, 25.0, 30.0, 60.0])
def test_five_syllables_a_second_are_speaking_at_any_frame_rate(fps: float) -> None:
    out = speech.speaking_table(mouth_table(syllables(5.0, fps), fps))
    inner = (out["time_ms"] > 500) & (out["time_ms"] < 3500)
    assert out.loc[inner, "speaking"].eq(1.0).all()
    assert out["speaking"].mean() > 0.8
    assert out.loc[inner, "speech_level"].median() == pytest.approx(0.02, rel=0.25)  # amplitude, face widths


def test_uneven_timestamps_and_slow_video() -> None:
    uneven = speech.speaking_table(mouth_table(syllables(5.0, 25.0), 25.0, jitter=0.3))
    assert uneven["speaking"].mean() > 0.8
    slow = speech.speaking_table(mouth_table(syllables(3.5, 10.0), 10.0))  # 10 fps: only up to 4 Hz is seen
    assert slow["speaking"].mean() > 0.6


@pytest.mark.parametrize("fps", [15.0, 30.0])
def test_a_sustained_opening_or_a_still_mouth_is_not_speaking(fps: float) -> None:
    t = seconds(4.0, fps)
    ramp = lambda start, ms=300: np.clip((t - start) / (ms / 1000), 0.0, 1.0)  # noqa: E731
    smooth = lambda r: (1 - np.cos(np.pi * r)) / 2  # noqa: E731
    jaw_drop = 0.15 * (smooth(ramp(1.0)) - smooth(ramp(2.2)))  # opens in 0.3 s, holds 0.9 s, closes in 0.3 s
    abrupt = 0.15 * (smooth(ramp(1.0, 100)) - smooth(ramp(2.4, 100)))  # the same in 0.1 s each way
    for opening in (jaw_drop, abrupt, np.full(len(t), 0.05), np.zeros(len(t))):
        out = speech.speaking_table(mouth_table(opening, fps))
        assert out["speaking"].eq(0.0).all()
    step_open = 0.1 * smooth(ramp(2.0))  # a mouth that opens and stays open (surprise)
    assert speech.speaking_table(mouth_table(step_open, fps))["speaking"].eq(0.0).all()
    blinks = np.where((t % 0.4) < 0.1, 0.004, 0.0)  # the mouth landmarks twitch with rapid blinks
    assert speech.speaking_table(mouth_table(blinks, fps))["speaking"].eq(0.0).all()


def test_frames_without_a_face_are_nan_and_make_no_oscillation() -> None:
    fps, n = 30.0, 120
    face = np.ones(n, bool)
    face[::3] = False  # every third frame lost ...
    face[60:75] = False  # ... and a 0.5 s hole
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        still = speech.speaking_table(mouth_table(np.full(n, 0.04), fps, face=face))
        talking = speech.speaking_table(mouth_table(syllables(5.0, fps), fps, face=face))
        none = speech.speaking_table(mouth_table(np.zeros(n), fps, face=np.zeros(n, bool)))
    for out in (still, talking):
        assert out.loc[~face, ["speech_level", "speaking"]].isna().all().all()
        assert out.loc[face, "speaking"].notna().all()
    assert still["speaking"].sum() == 0
    assert none[["speech_level", "speaking"]].isna().all().all()
    level, speaking = speech.speech_signals(
        talking["time_ms"], face, talking["g_lip_gap"], talking["g_jaw_y"], talking["bs_jawOpen"]
    )
    assert np.isnan(speaking[~face]).all() and np.nanmax(level) > 0.01
    assert np.nanmean(speaking) > 0.5


def test_any_chunking_gives_the_same_rows(raw_tables: dict[str, pd.DataFrame]) -> None:
    face = np.ones(150, bool)
    face[40:52] = False
    synthetic = mouth_table(np.concatenate([syllables(4.0, 30.0, 2.0), np.zeros(90)]), 30.0, face=face, jitter=0.2)
    for frames in (raw_tables["NEU"], raw_tables["HAP"], synthetic):
        whole = speech.speaking_table(frames)
        assert list(whole.columns) == [*frames.columns, "speech_level", "speaking"]
        for size in (1, 7, 64):
            chunked, held = in_chunks(frames, size)
            pd.testing.assert_frame_equal(chunked, whole, check_exact=True)
            assert held <= 1.5 * 30 + size + 2  # one window of look-ahead, half a window of context


def test_memory_stays_bounded_on_a_long_stream() -> None:
    fps = 30.0
    frames = mouth_table(syllables(4.0, fps, duration_s=60.0), fps)
    state, most_pending, emitted = speech.SpeechState(), 0, 0
    for start in range(0, len(frames), 64):
        out, state = speech.step(state, frames.iloc[start : start + 64])
        emitted += len(out)
        most_pending = max(most_pending, 0 if state.pending is None else len(state.pending))
        assert emitted >= min(start + 64, len(frames)) - (most_pending + 1)
    assert most_pending <= 30 + 64 + 1  # a window (1 s = 30 frames) plus a chunk


def test_empty_and_missing_input() -> None:
    state = speech.SpeechState()
    out, same = speech.step(state, None)
    assert len(out) == 0 and same == state
    out, same = speech.step(state, mouth_table(np.zeros(0)), final=True)
    assert len(out) == 0 and {"speech_level", "speaking"} <= set(out.columns)
    with pytest.raises(AupipeError, match="g_jaw_y"):
        speech.speaking_table(mouth_table(np.zeros(10)).drop(columns=["g_jaw_y"]))


def test_windows_get_the_share_of_face_frames_speaking() -> None:
    fps = 30.0
    face = np.ones(150, bool)
    face[120:] = False  # the last second has no face
    frames = mouth_table(np.concatenate([syllables(5.0, fps, 2.0), np.zeros(90)]), fps, face=face)
    frames["AU12_r"] = 0.0
    table = windows.compute_windows(speech.speaking_table(frames))
    columns = list(table.columns)
    assert columns[columns.index("face_coverage") + 1] == "speaking"
    assert columns == [*windows.INFO_COLUMNS, "speaking", "AU12_peak", "AU12_mean", "AU12_rise"]
    at = lambda ms: table.loc[(table["start_ms"] - ms).abs().idxmin()]  # noqa: E731
    assert at(500)["speaking"] == 1.0  # [500, 1000) ms: talking
    assert at(3000)["speaking"] == 0.0  # [3000, 3500) ms: mouth still
    assert np.isnan(at(4300)["speaking"]) and at(4300)["face_coverage"] == 0.0
    assert "speaking" not in windows.compute_windows(frames).columns
