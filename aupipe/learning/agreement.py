"""Agreement between AU intensities and a reference: Pearson r, ICC(3,1), presence F1, per person.

All functions take (n,) arrays on the 0-5 scale and ignore pairs where either value is NaN.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MIN_PAIRS = 10  # fewer valid pairs (or a constant series) -> NaN


def _pairs(predicted: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(predicted, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep], b[keep]


def pearson(predicted: np.ndarray, reference: np.ndarray) -> float:
    """Pearson r; NaN with fewer than ``MIN_PAIRS`` pairs or a constant series."""
    a, b = _pairs(predicted, reference)
    if len(a) < MIN_PAIRS or a.std() < 1e-9 or b.std() < 1e-9:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def icc31(predicted: np.ndarray, reference: np.ndarray) -> float:
    """ICC(3,1), two-way mixed, consistency, single rater (Shrout & Fleiss): frames are targets."""
    a, b = _pairs(predicted, reference)
    n = len(a)
    if n < MIN_PAIRS:
        return float("nan")
    data = np.stack([a, b], axis=1)
    grand = data.mean()
    ms_rows = 2.0 * ((data.mean(axis=1) - grand) ** 2).sum() / (n - 1)
    residual = data - data.mean(axis=1, keepdims=True) - data.mean(axis=0, keepdims=True) + grand
    ms_error = (residual**2).sum() / (n - 1)
    if ms_rows + ms_error <= 1e-12:
        return float("nan")
    return float((ms_rows - ms_error) / (ms_rows + ms_error))


def presence_f1(predicted: np.ndarray, reference: np.ndarray, threshold: float = 1.0) -> float:
    """F1 of presence (value >= ``threshold``, 1.0 = FACS A); NaN when neither side is ever present."""
    a, b = _pairs(predicted, reference)
    on_a, on_b = a >= threshold, b >= threshold
    true_positive = float((on_a & on_b).sum())
    denominator = float(on_a.sum() + on_b.sum())
    return float("nan") if denominator == 0 else 2.0 * true_positive / denominator


def au_agreement(
    predicted: dict[str, np.ndarray], reference: dict[str, np.ndarray], person: np.ndarray
) -> pd.DataFrame:
    """Per AU: pooled ``r``, ``icc``, ``f1``, the median over people of each person's r
    (``person_r``) and the number of valid frames. predicted / reference: AU -> (n,) over the
    same frames; person: (n,) group label of each frame."""
    rows = []
    person = np.asarray(person)
    people = pd.unique(person)
    for au in predicted:
        p, r = predicted[au], reference[au]
        per_person = [pearson(p[person == who], r[person == who]) for who in people]
        with np.errstate(all="ignore"):
            person_r = float(np.nanmedian(per_person)) if np.isfinite(per_person).any() else float("nan")
        rows.append({"au": au, "r": pearson(p, r), "icc": icc31(p, r), "f1": presence_f1(p, r), "person_r": person_r,
                     "n_frames": int((np.isfinite(p) & np.isfinite(r)).sum())})  # fmt: skip
    return pd.DataFrame(rows).set_index("au")


def person_medians(predicted: dict[str, np.ndarray], reference: dict[str, np.ndarray], person: np.ndarray) -> pd.Series:
    """Per person: the median over AUs of that person's Pearson r (AUs constant for them left out)."""
    person = np.asarray(person)
    out = {}
    for who in pd.unique(person):
        mask = person == who
        values = [pearson(predicted[au][mask], reference[au][mask]) for au in predicted]
        out[who] = float(np.nanmedian(values)) if np.isfinite(values).any() else float("nan")
    return pd.Series(out, name="median_r")
