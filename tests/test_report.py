"""The report (issue 17, docs/report.md): one self-contained HTML page per video, in the same pass as
``aupipe run --report`` or later with ``aupipe report --from``, and a summary PNG.

Real model on real footage: the HAP sample clip and a 60 s clip made by ``aupipe.events.synth``
with clear events (twice synth's usual amplitudes, as in test_annotations). Headless Chromium
(Debian's ``chromium``, installed by .ci/run) opens both pages: no console error, the timeline
drawn, one card and one band per event, and no external resource referenced.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from aupipe.cli.main import main
from aupipe.events import synth

from .conftest import SAMPLES, clip

# Clear events spread over the minute (the spotter reports them with the default min_confidence).
EVENTS = (
    synth.SynthEvent(6000.0, 250.0, (("AU01", 0.14), ("AU02", 0.14))),
    synth.SynthEvent(14000.0, 300.0, (("AU04", 0.14), ("AU07", 0.08))),
    synth.SynthEvent(22000.0, 1500.0, (("AU01", 0.16), ("AU02", 0.16)), rise=0.25, hold=0.5),
    synth.SynthEvent(41000.0, 2000.0, (("AU12", 0.16), ("AU06", 0.08)), rise=0.25, hold=0.5),
    synth.SynthEvent(51000.0, 300.0, (("AU15", 0.12), ("AU17", 0.12))),
)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
EXTERNAL = re.compile(r"""(?:\b(?:src|href|action|poster)\s*=\s*["']?\s*(?:https?:)?//)|@import|url\(\s*["']?\s*(?:https?:)?//""",
                      re.IGNORECASE)  # fmt: skip


def aupipe_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aupipe", *map(str, args)], capture_output=True, text=True, timeout=300
    )


def run_with_report(video: Path, folder: Path) -> dict[str, Path]:
    """``aupipe run VIDEO`` into ``folder`` with every table (named as ``--from`` looks for them),
    the report and its PNG, in one pass."""
    stem = video.stem
    out = {kind: folder / f"{stem}.{kind}.csv" for kind in ("windows", "frames", "events", "summary", "baseline")}
    out |= {"html": folder / "one-pass.html", "png": folder / "one-pass.png", "video": video}
    done = aupipe_cli("run", video, "-o", out["windows"], "--frames", out["frames"], "--no-landmarks",
                      "--events", out["events"], "--summary", out["summary"], "--baseline-out", out["baseline"],
                      "--report", out["html"], "--png", out["png"], "--quiet")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"{out['html']}" in done.stderr and f"{out['png']}" in done.stderr
    return out


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("report-synth")
    video = folder / "clip.avi"
    synth.synthesize(SAMPLES / "1001_DFA_NEU_XX.flv", video, EVENTS, duration_s=60)
    return run_with_report(video, folder)


@pytest.fixture(scope="module")
def hap(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return run_with_report(clip("HAP"), tmp_path_factory.mktemp("report-hap"))


@pytest.fixture(scope="module", params=["hap", "synthetic"])
def report_run(request: pytest.FixtureRequest) -> dict[str, Path]:
    return request.getfixturevalue(request.param)


def test_report_from_the_tables_is_the_one_pass_report(report_run: dict[str, Path], tmp_path: Path) -> None:
    page, png = tmp_path / "later.html", tmp_path / "later.png"
    folder = report_run["windows"].parent
    assert main(["report", str(report_run["video"]), "--from", str(folder), "-o", str(page), "--png", str(png)]) == 0
    assert page.read_bytes() == report_run["html"].read_bytes()
    for image in (png, report_run["png"]):
        assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and image.stat().st_size > 20_000
    # the same from the table files named one by one (told apart by their columns), in any order
    files = [str(report_run[k]) for k in ("summary", "events", "frames", "baseline", "windows")]
    again = tmp_path / "files.html"
    assert main(["report", str(report_run["video"]), "--from", *files, "-o", str(again)]) == 0
    assert again.read_bytes() == page.read_bytes()


def test_the_page_references_nothing_outside_itself(report_run: dict[str, Path]) -> None:
    html = report_run["html"].read_text(encoding="utf-8")
    assert EXTERNAL.findall(html) == []
    assert "<link" not in html and "<iframe" not in html
    srcs = re.findall(r"""\bsrc\s*=\s*["']([^"']*)""", html)
    assert all(s.startswith("data:image/") for s in srcs), srcs
    assert len(html.encode()) < 2_000_000  # a minute is well under a tenth of the 10 MB an hour may take


def chromium_page(page: Path, shot: Path) -> tuple[str, str]:
    """(DOM after the page's scripts ran, Chromium's stderr with the page's console) and a screenshot."""
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
         "--enable-logging=stderr", "--v=0", "--window-size=1400,2600", "--virtual-time-budget=5000",
         f"--screenshot={shot}", "--dump-dom", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, done.stderr


def console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


needs_chromium = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="headless Chromium is not installed (apt-get install chromium; .ci/run installs it)",
)


@needs_chromium
def test_chromium_opens_the_page_without_errors_and_draws_timeline_and_cards(
    report_run: dict[str, Path], tmp_path: Path
) -> None:
    assert CHROMIUM is not None, "CI must have chromium (.ci/run installs it)"
    events = pd.read_csv(report_run["events"])
    shot = tmp_path / "page.png"
    dom, stderr = chromium_page(report_run["html"], shot)
    assert console_lines(stderr) == [] and not re.search(r"<html[^>]* data-errors=", dom), console_lines(stderr)
    assert re.search(r'<pre id="report-errors" hidden=""', dom)
    assert 'data-ready="1"' in dom  # the script ran to its end and drew the timeline
    for canvas in ("tl-heat", "tl-ribbon", "tl-axis", "tl-overview"):
        assert re.search(rf'<canvas id="{canvas}"[^>]* width="\d+" height="\d+"', dom), canvas
    assert len(re.findall(r'<article class="event-card ', dom)) == len(events)
    assert len(re.findall(r'<a class="band (?:micro|macro)"', dom)) == len(events)
    assert len(re.findall(r'<canvas class="spark" data-au="AU\d\d" height="\d+" width="\d+"', dom)) == 19
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    if report_run["video"].suffix == ".avi":
        assert len(events) >= 2  # the clear injected events (5; the spotter finds most of them)
        assert len(re.findall(r'<img src="data:image/jpeg;base64,', dom)) == 4 * len(events) + 1  # + the baseline


@needs_chromium
def test_the_browser_check_sees_a_script_error(hap: dict[str, Path], tmp_path: Path) -> None:
    broken = tmp_path / "broken.html"
    broken.write_text(
        hap["html"]
        .read_text(encoding="utf-8")
        .replace("    draw();\n  }\n", "    draw();\n    noSuchFunction();\n  }\n")
    )
    dom, stderr = chromium_page(broken, tmp_path / "broken.png")
    assert re.search(r'<html[^>]* data-errors="1"', dom) and "noSuchFunction" in dom
    assert any("noSuchFunction" in line for line in console_lines(stderr))


def error_line(capsys: pytest.CaptureFixture[str], args: list[str], code: int, fragment: str) -> None:
    assert main(args) == code
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("aupipe: error: ") and fragment in lines[0], lines


def test_bad_inputs_give_one_line_and_an_exit_code(
    hap: dict[str, Path], synthetic: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    video, out = str(synthetic["video"]), str(tmp_path / "r.html")
    empty = tmp_path / "empty"
    empty.mkdir()
    error_line(capsys, ["report", video, "--from", str(empty), "-o", out], 2, "no window table")
    error_line(capsys, ["report", video, "--from", str(tmp_path / "missing"), "-o", out], 2, "no such table")
    error_line(capsys, ["report", video, "--from", str(SAMPLES / "ATTRIBUTION.md"), "-o", out], 2, "not ")
    # another video's tables: longer than the video, or far shorter (unless --partial)
    error_line(
        capsys, ["report", str(hap["video"]), "--from", str(synthetic["windows"]), "-o", out], 2, "another video"
    )
    error_line(capsys, ["report", video, "--from", str(hap["windows"]), "-o", out], 2, "--partial")
    error_line(capsys, ["report", video, "--from", str(synthetic["windows"]), str(hap["frames"]), "-o", out], 2,
               "different runs")  # fmt: skip
    error_line(capsys, ["report", video, "--from", str(synthetic["windows"]), "-o", out, "--mapping", "basic_emotions"],
               3, "not the ones that labelled")  # fmt: skip
    # outputs over inputs: refused before any work
    error_line(capsys, ["report", video, "--from", str(synthetic["windows"].parent), "-o", str(synthetic["windows"])],
               4, "overwrite")  # fmt: skip
    error_line(capsys, ["report", video, "--from", str(synthetic["windows"]), "-o", video], 4, "overwrite")
    error_line(capsys, ["report", video, "--from", str(synthetic["windows"]), "-o", str(tmp_path / "no" / "r.html")],
               4, "does not exist")  # fmt: skip
    error_line(capsys, ["run", str(hap["video"]), "-o", str(tmp_path / "w.csv"), "--report", str(hap["video"])], 4,
               "overwrite")  # fmt: skip
    assert not Path(out).exists() and list(tmp_path.glob(".*.part")) == []


def test_a_partial_run_is_reported_with_partial(
    synthetic: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    windows = pd.read_csv(synthetic["windows"])
    windows[windows["end_ms"] <= 20_000].to_csv(tmp_path / "clip.windows.csv", index=False)
    page = tmp_path / "r.html"
    assert main(["report", str(synthetic["video"]), "--from", str(tmp_path), "-o", str(page), "--partial"]) == 0
    assert "aupipe: report of 0 events" in capsys.readouterr().err  # no events table given: no cards
    assert page.stat().st_size > 10_000


def test_the_api_returns_the_figures(hap: dict[str, Path], tmp_path: Path) -> None:
    import warnings

    from matplotlib.figure import Figure

    import aupipe

    built = aupipe.report(hap["video"], hap["windows"].parent)
    assert built.html == hap["html"].read_text(encoding="utf-8") and built.html_path is None
    figures = built.figures
    assert set(figures) == {"timeline", "aus", "summary"} and all(isinstance(f, Figure) for f in figures.values())
    assert len(figures["aus"].axes) == 19
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", aupipe.AupipeWarning)
        result = aupipe.analyze(hap["video"])
    from_result = aupipe.report(hap["video"], result, tmp_path / "r.html", tmp_path / "r.png")
    assert from_result.html_path == tmp_path / "r.html" and (tmp_path / "r.png").stat().st_size > 20_000
    assert len(from_result.panels) == 19 and from_result.overview["n_windows"] == len(result.windows)
