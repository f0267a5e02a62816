"""Spotting evaluation: the MEGC protocol (precision, recall and F1 of predicted intervals).

A predicted interval is a true positive (TP) when its intersection over union (IoU) with a
ground-truth interval of the same kind is >= ``iou`` (0.5 in MEGC); each ground-truth interval
is matched at most once and each prediction at most once. Matching is greedy by IoU: all
(prediction, truth) pairs at or above the threshold, highest IoU first (ties: earlier truth,
then earlier prediction), each taken when both are still free. Unmatched predictions are false
positives (FP), unmatched truths false negatives (FN). Precision = TP / (TP + FP), recall =
TP / (TP + FN), F1 = 2PR / (P + R); with nothing to count they are reported as 0 (F1 is 1.0 when
there is neither a prediction nor a truth of that kind).

Kinds are evaluated separately (``micro``, ``macro``): a micro prediction can only match a micro
truth. ``overall`` pools the two kinds' counts. Rows of other kinds (e.g. ``blink`` in a
synthetic truth file) are left out.

Intervals: with ``unit="frame"`` both tables need ``onset_frame`` and ``offset_frame``
(inclusive frame numbers; IoU counts frames, as MEGC does); with ``unit="ms"``, ``onset_ms`` and
``offset_ms`` (continuous time). ``unit="auto"`` uses frames when both tables have them, else ms.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from aupipe.errors import InputError, SettingsError

KINDS: tuple[str, ...] = ("micro", "macro")


def interval_iou(pred: np.ndarray, truth: np.ndarray, inclusive: bool) -> np.ndarray:
    """IoU matrix (p, t) of intervals ``pred`` (p, 2) and ``truth`` (t, 2) given as (start, end).

    ``inclusive``: integer frame intervals, both ends counted (length = end - start + 1).
    Zero-length continuous intervals overlap nothing (IoU 0) unless identical (IoU 1).
    """
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 2)
    truth = np.asarray(truth, dtype=np.float64).reshape(-1, 2)
    extra = 1.0 if inclusive else 0.0
    start = np.maximum(pred[:, None, 0], truth[None, :, 0])
    end = np.minimum(pred[:, None, 1], truth[None, :, 1])
    inter = np.clip(end - start + extra, 0.0, None)
    length_p = np.clip(pred[:, 1] - pred[:, 0] + extra, 0.0, None)
    length_t = np.clip(truth[:, 1] - truth[:, 0] + extra, 0.0, None)
    union = length_p[:, None] + length_t[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    same = (pred[:, None, 0] == truth[None, :, 0]) & (pred[:, None, 1] == truth[None, :, 1])
    return np.where(same & (union == 0), 1.0, iou)


def match(iou_matrix: np.ndarray, threshold: float = 0.5) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching on an IoU matrix (p, t): pairs (pred, truth, iou) with iou >= threshold."""
    pred_idx, truth_idx = np.nonzero(iou_matrix >= threshold)
    values = iou_matrix[pred_idx, truth_idx]
    order = np.lexsort((pred_idx, truth_idx, -values))
    used_p: set[int] = set()
    used_t: set[int] = set()
    pairs = []
    for k in order:
        p, t = int(pred_idx[k]), int(truth_idx[k])
        if p in used_p or t in used_t:
            continue
        used_p.add(p)
        used_t.add(t)
        pairs.append((p, t, float(values[k])))
    return pairs


def _intervals(table: pd.DataFrame, unit: str, name: str) -> np.ndarray:
    columns = ("onset_frame", "offset_frame") if unit == "frame" else ("onset_ms", "offset_ms")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputError(f"{name}: needs columns {' and '.join(columns)} (missing {', '.join(missing)})")
    values = table[list(columns)].to_numpy(dtype=np.float64)
    if len(values) and (~np.isfinite(values)).any():
        raise InputError(f"{name}: {columns[0]} / {columns[1]} must be numbers in every row")
    if (values[:, 1] < values[:, 0]).any():
        row = int(np.flatnonzero(values[:, 1] < values[:, 0])[0])
        raise InputError(f"{name}: row {row + 1} ends before it starts ({columns[1]} < {columns[0]})")
    return values


def _kinds(table: pd.DataFrame, name: str) -> np.ndarray:
    if "kind" not in table.columns:
        raise InputError(f"{name}: needs a column kind (micro or macro)")
    return table["kind"].astype(str).str.strip().str.lower().to_numpy()


def _unit(pred: pd.DataFrame, truth: pd.DataFrame, unit: str) -> str:
    if unit not in ("auto", "ms", "frame"):
        raise SettingsError(f"unit must be auto, ms or frame (got {unit!r})")
    if unit != "auto":
        return unit
    frames = {"onset_frame", "offset_frame"}
    return "frame" if frames <= set(pred.columns) and frames <= set(truth.columns) else "ms"


def _scores(tp: int, n_pred: int, n_truth: int) -> dict[str, float | int]:
    fp, fn = n_pred - tp, n_truth - tp
    if n_pred == 0 and n_truth == 0:
        precision = recall = f1 = 1.0
    else:
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / n_truth if n_truth else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "n_pred": n_pred, "n_truth": n_truth,
            "precision": precision, "recall": recall, "f1": f1}  # fmt: skip


def evaluate(pred: pd.DataFrame, truth: pd.DataFrame, iou: float = 0.5, unit: str = "auto") -> dict[str, dict]:
    """MEGC spotting scores of predicted events ``pred`` against ``truth`` (module docstring).

    Both tables need ``kind`` and the interval columns of ``unit``. Returns
    ``{"micro": {...}, "macro": {...}, "overall": {...}, "matches": [...]}``: per kind ``tp``,
    ``fp``, ``fn``, ``n_pred``, ``n_truth``, ``precision``, ``recall``, ``f1``, plus ``unit`` and
    ``iou``; ``matches`` lists (kind, pred row, truth row, IoU) of the true positives.
    """
    if not 0 < iou <= 1:
        raise SettingsError(f"iou must be in (0, 1], got {iou}")
    chosen = _unit(pred, truth, unit)
    p_int, t_int = _intervals(pred, chosen, "predictions"), _intervals(truth, chosen, "ground truth")
    p_kind, t_kind = _kinds(pred, "predictions"), _kinds(truth, "ground truth")
    out: dict[str, dict] = {}
    matches = []
    totals = [0, 0, 0]
    for kind in KINDS:
        p_rows, t_rows = np.flatnonzero(p_kind == kind), np.flatnonzero(t_kind == kind)
        pairs = match(interval_iou(p_int[p_rows], t_int[t_rows], chosen == "frame"), iou)
        matches += [(kind, int(p_rows[p]), int(t_rows[t]), v) for p, t, v in pairs]
        out[kind] = _scores(len(pairs), len(p_rows), len(t_rows)) | {"unit": chosen, "iou": iou}
        totals = [totals[0] + len(pairs), totals[1] + len(p_rows), totals[2] + len(t_rows)]
    out["overall"] = _scores(*totals) | {"unit": chosen, "iou": iou}
    out["matches"] = matches  # type: ignore[assignment]
    return out


def read_events(path: str | Path) -> pd.DataFrame:
    """Read an events CSV (predictions or ground truth); InputError when missing or unreadable."""
    source = Path(path)
    if not source.is_file():
        raise InputError(f"{source}: no such file")
    try:
        return pd.read_csv(source)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InputError(f"{source}: not a readable CSV ({str(err).splitlines()[0]})") from None


def report(result: dict[str, dict]) -> str:
    """A printable table of ``evaluate``'s result: one row per kind and overall."""
    unit, iou = result["overall"]["unit"], result["overall"]["iou"]
    header = ("kind", "truth", "pred", "TP", "FP", "FN", "precision", "recall", "F1")
    rows = [header]
    for kind in (*KINDS, "overall"):
        r = result[kind]
        rows.append((kind, str(r["n_truth"]), str(r["n_pred"]), str(r["tp"]), str(r["fp"]), str(r["fn"]),
                     f"{r['precision']:.3f}", f"{r['recall']:.3f}", f"{r['f1']:.3f}"))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        f"MEGC spotting: TP when IoU >= {iou:g} ({'frames' if unit == 'frame' else 'ms'}), each truth matched once"
    ]
    for k, row in enumerate(rows):
        lines.append(
            "  ".join(
                cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def evaluate_files(pred_path: str | Path, truth_path: str | Path, iou: float = 0.5, unit: str = "auto") -> str:
    """``aupipe spot-eval PRED.csv TRUTH.csv``: read both files, evaluate, return the printable table."""
    return report(evaluate(read_events(pred_path), read_events(truth_path), iou, unit))
