"""Training metrics and reports: accuracy, unweighted average recall, macro F1, per-group scores, metrics.json and confusion plots."""

from __future__ import annotations


import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aupipe.errors import AupipeError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from aupipe.learning.training import SegmentData

#: Demographic fields (CREMA-D's VideoDemographics.csv) that scores are broken down by.
GROUP_FIELDS: tuple[str, ...] = ("Sex", "AgeGroup", "Race", "Ethnicity")


def classification_metrics(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
    """accuracy, macro_f1, uar (balanced accuracy), per-class recall (None when a class is absent),
    confusion matrix (rows = truth, columns = prediction, in ``labels`` order) and support."""
    import numpy as np
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score

    truth = np.asarray(y_true, dtype=object).astype(str)
    pred = np.asarray(y_pred, dtype=object).astype(str)
    labels = list(labels) + sorted((set(truth) | set(pred)) - set(labels))
    if len(truth) == 0:
        return {"n": 0}
    matrix = confusion_matrix(truth, pred, labels=labels)
    support = matrix.sum(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # y_pred may hold classes absent from y_true
        uar = balanced_accuracy_score(truth, pred)
    recall = {label: (float(matrix[k, k] / support[k]) if support[k] else None) for k, label in enumerate(labels)}
    return {
        "n": int(len(truth)),
        "accuracy": float(accuracy_score(truth, pred)),
        "macro_f1": float(f1_score(truth, pred, average="macro", zero_division=0)),
        "uar": float(uar),
        "per_class_recall": recall,
        "support": {label: int(s) for label, s in zip(labels, support, strict=True)},
        "labels": labels,
        "confusion": matrix.tolist(),
    }


def _clip_predictions(data: SegmentData, rows: np.ndarray, proba: np.ndarray) -> tuple[pd.DataFrame, list[str]]:
    """Clip-level truth and prediction from the mean window probabilities of each clip.

    core level: argmax over the model's labels; micro level with a dataset link: the micro
    probabilities are summed per dataset label first. Returns (clip table, label order).
    """
    import numpy as np
    import pandas as pd

    from aupipe.learning.model import to_dataset_label

    frame = pd.DataFrame(proba, columns=list(data.labels))
    frame["clip_id"] = data.clip_ids[rows]
    mean = frame.groupby("clip_id", sort=True).mean()
    truth = data.clip_label()
    if data.level == "micro":
        if not data.label_key or data.space != "micro":
            return pd.DataFrame(columns=["clip_id", "truth", "pred"]), []
        targets = list(data.dataset_labels)
        summed = np.zeros((len(mean), len(targets)))
        for label in data.labels:
            mapped = to_dataset_label(label, data.mapping, data.label_key)
            if mapped in targets:
                summed[:, targets.index(mapped)] += mean[label].to_numpy()
        names = targets
        pred = np.asarray(names, dtype=object)[np.argmax(summed, axis=1)]
    else:
        names = list(data.labels)
        pred = np.asarray(names, dtype=object)[np.argmax(mean.to_numpy(), axis=1)]
    table = pd.DataFrame({"clip_id": mean.index, "truth": [truth[c] for c in mean.index], "pred": pred})
    return table, names


def _per_group(clip_table: pd.DataFrame, clips: pd.DataFrame, labels: list[str]) -> dict[str, Any]:
    """Clip-level accuracy and UAR per value of each demographic (or small metadata) field."""
    merged = clip_table.merge(clips, on="clip_id", how="left")
    fields = [f for f in GROUP_FIELDS if f in merged.columns]
    if not fields:
        skip = {"clip_id", "truth", "pred", "path", "label", "subject"}
        fields = [c for c in clips.columns if c not in skip and 2 <= merged[c].nunique() <= 20]
    out: dict[str, Any] = {}
    for name in fields:
        groups: dict[str, Any] = {}
        for value, part in merged.groupby(merged[name].fillna("").astype(str), sort=True):
            scores = classification_metrics(part["truth"], part["pred"], labels)
            groups[value or "(unknown)"] = {k: scores[k] for k in ("n", "accuracy", "uar", "macro_f1")}
        out[name] = groups
    return out


def score_predictions(data: SegmentData, rows: np.ndarray, proba: np.ndarray, rule_weight: float) -> dict[str, Any]:
    """Window, clip, rule-only and fused metrics of ``proba`` (len(rows), n_labels) for ``rows``."""
    import numpy as np

    from aupipe.learning.model import rule_probabilities

    labels = list(data.labels)
    names = np.asarray(labels, dtype=object)
    truth = names[data.y[rows]]
    result: dict[str, Any] = {"window": classification_metrics(truth, names[np.argmax(proba, axis=1)], labels)}
    rule = rule_probabilities(data.windows.iloc[rows], data.mapping, labels, data.space)
    if rule is not None:
        fused = (1.0 - rule_weight) * proba + rule_weight * rule
        if data.level != "micro":  # at micro level the rule's winner is the label itself
            result["window_rule_only"] = classification_metrics(truth, names[np.argmax(rule, axis=1)], labels)
        result["window_fused"] = classification_metrics(truth, names[np.argmax(fused, axis=1)], labels)
        result["rule_weight"] = rule_weight
    clip_table, clip_labels = _clip_predictions(data, rows, proba)
    if len(clip_table):
        result["clip"] = classification_metrics(clip_table["truth"], clip_table["pred"], clip_labels)
        result["per_group"] = _per_group(clip_table, data.clips, clip_labels)
    return result


def headline(block: dict[str, Any]) -> dict[str, Any]:
    return {k: block[k] for k in ("n", "accuracy", "macro_f1", "uar") if k in block}


def write_report(out_dir: str | Path, metrics: dict[str, Any], scores: dict[str, Any] | None, title: str) -> None:
    """Write ``metrics.json`` and, when ``scores`` has them, ``confusion.png`` (window and clip level)."""
    folder = Path(out_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=1, default=_json_default) + "\n")
        if scores:
            _plot_confusions(folder / "confusion.png", scores, title)
    except OSError as err:
        raise AupipeError(f"{folder}: cannot write the report ({err.strerror or err})") from err


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _plot_confusions(path: Path, scores: dict[str, Any], title: str) -> None:
    """Row-normalised confusion matrices (recall per true class) side by side, PNG via the Agg canvas."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = [(name, scores[key]) for key, name in (("window", "window level"), ("clip", "clip level"))
              if key in scores and scores[key].get("n")]  # fmt: skip
    size = max(len(p[1]["labels"]) for p in panels)
    figure = Figure(
        figsize=(max(5.0, 0.55 * size + 2.5) * len(panels), max(4.5, 0.5 * size + 2.0)), layout="constrained"
    )
    FigureCanvasAgg(figure)
    for i, (name, block) in enumerate(panels):
        ax = figure.add_subplot(1, len(panels), i + 1)
        counts = np.asarray(block["confusion"], dtype=np.float64)
        rates = np.divide(counts, counts.sum(axis=1, keepdims=True), out=np.zeros_like(counts),
                          where=counts.sum(axis=1, keepdims=True) > 0)  # fmt: skip
        ax.imshow(rates, vmin=0.0, vmax=1.0, cmap="Blues")
        labels = block["labels"]
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        ax.set_yticks(range(len(labels)), labels)
        for r in range(len(labels)):
            for c in range(len(labels)):
                if counts[r, c]:
                    ax.text(c, r, f"{rates[r, c]:.2f}\n({int(counts[r, c])})", ha="center", va="center", fontsize=7,
                            color="white" if rates[r, c] > 0.5 else "black")  # fmt: skip
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{name}: acc {block['accuracy']:.2f}, UAR {block['uar']:.2f}, F1 {block['macro_f1']:.2f}",
                     fontsize=9)  # fmt: skip
    figure.suptitle(title, fontsize=10)
    figure.savefig(path, dpi=110)
