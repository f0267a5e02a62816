"""Optional AU backend: py-feat's detector (extra ``aupipe[pyfeat]``), on the GPU when torch sees one.

py-feat's wheel ships no weights: its detector downloads them from the Hugging Face hub on first
use, so this backend needs network access once (or a pre-filled hub cache). The default
backend (MediaPipe, bundled model) never needs it. py-feat's AU outputs (``AU01`` ... as 0-1
scores) are renamed into aupipe's schema (``AU01_r`` on 0-5, ``AU01_c``) so the rest of the
pipeline — windows, mapping, events — is unchanged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from aupipe.signal.aus import AU_NAMES
from aupipe.errors import AupipeError

INSTALL_HINT = "pip install 'aupipe[pyfeat]'"


def require_pyfeat() -> None:
    """Raise one clear AupipeError line when py-feat is not installed."""
    try:
        import feat  # noqa: F401
    except ImportError:
        raise AupipeError(
            f"--au-backend pyfeat needs py-feat, which is not installed: {INSTALL_HINT} "
            "(its weights download from the Hugging Face hub on first use)"
        ) from None


def rename_pyfeat_columns(fex: pd.DataFrame, presence_threshold: float = 1.0) -> pd.DataFrame:
    """py-feat AU scores (columns ``AU01``.., 0-1, one row per frame) -> ``AU01_r`` (0-5) and ``AU01_c``.

    AUs aupipe reports that py-feat lacks stay NaN; ``frame`` is kept when present.
    """
    out = pd.DataFrame(index=fex.index)
    if "frame" in fex:
        out["frame"] = fex["frame"].to_numpy()
    for au in AU_NAMES:
        values = fex[au].to_numpy(dtype=np.float64) * 5.0 if au in fex else np.full(len(fex), np.nan)
        out[f"{au}_r"] = np.clip(values, 0.0, 5.0)
        out[f"{au}_c"] = np.where(np.isnan(values), np.nan, (values >= presence_threshold).astype(float))
    return out


def detect_aus(path: str | Path) -> pd.DataFrame:  # pragma: no cover - needs py-feat and its hub weights
    """Run py-feat's Detector over a video; one row per frame in aupipe's AU schema."""
    require_pyfeat()
    import torch
    from feat import Detector

    device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        fex = Detector(device=device).detect(str(path), data_type="video")
    except OSError as err:  # weights missing and no network to fetch them
        raise AupipeError(
            f"py-feat could not load its model weights ({err}); it needs the Hugging Face hub once"
        ) from None
    return rename_pyfeat_columns(pd.DataFrame(fex).reset_index(drop=True))
