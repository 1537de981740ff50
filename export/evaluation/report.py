"""The evaluation report: Markdown for people, JSON for tools, PNG plots."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from export.evaluation import metrics

_HEADLINE = (
    ("accuracy", "accuracy"),
    ("weighted_f1", "weighted F1"),
    ("macro_f1", "macro F1"),
    ("weighted_precision", "weighted precision"),
    ("weighted_recall", "weighted recall"),
    ("macro_precision", "macro precision"),
    ("macro_recall", "macro recall"),
    ("top3_accuracy", "top-3 accuracy"),
    ("hier_precision", "hierarchical precision"),
    ("hier_recall", "hierarchical recall"),
    ("hier_f1", "hierarchical F1"),
    ("top_level_accuracy", "top-level accuracy"),
    ("coverage_at_95", "coverage at 95% precision"),
)


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else ("–" if value is None else str(value))


def _plots(
    out: Path,
    truth: Sequence[tuple[str, ...]],
    leaf_pred: Sequence[tuple[str, ...]],
    confidence: npt.NDArray[np.float64],
) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files: list[str] = []
    correct = np.array([a == b for a, b in zip(truth, leaf_pred, strict=True)])
    _, coverage, precision = metrics.coverage_precision_curve(confidence, correct)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(coverage, precision)
    ax.axhline(0.95, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xlabel("coverage (share of items answered)")
    ax.set_ylabel("precision of answered items")
    ax.set_title("Coverage vs precision (leaf threshold)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "coverage_precision.png", dpi=110)
    plt.close(fig)
    files.append("coverage_precision.png")

    classes, matrix = metrics.confusion_matrix(truth, leaf_pred, depth=1, top=12)
    fig, ax = plt.subplots(figsize=(7, 6))
    norm = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)))
    ax.set_yticks(range(len(classes)))
    # CJK labels may lack a font; show indices and list the names in the Markdown.
    ax.set_xticklabels([str(i) for i in range(len(classes))])
    ax.set_yticklabels([str(i) for i in range(len(classes))])
    ax.set_xlabel("predicted top-level class")
    ax.set_ylabel("true top-level class")
    ax.set_title("Top-level confusion (row-normalised)")
    fig.tight_layout()
    fig.savefig(out / "confusion_top_level.png", dpi=110)
    plt.close(fig)
    files.append("confusion_top_level.png")
    return files


def _candidate_lines(model: dict[str, Any]) -> list[str]:
    """Every candidate's validation scores; the chosen one (highest weighted F1) in bold."""
    candidates = model.get("candidates") or []
    if not candidates:
        return []
    lines = [
        "",
        "## Candidates (validation split; the highest weighted F1 is exported)",
        "",
        "| candidate | val weighted F1 | val accuracy | epochs (best) | train s |",
        "|---|---|---|---|---|",
    ]
    for c in candidates:
        name = c["architecture"]
        if name == model.get("chosen"):
            name = f"**{name}**"
        epochs = f"{c['epochs']} ({c['best_epoch']})" if "epochs" in c else ""
        lines.append(
            f"| {name} | {_fmt(c.get('val_weighted_f1'))} | {_fmt(c.get('val_accuracy'))} | "
            f"{epochs} | {c.get('train_seconds', '')} |"
        )
    return lines


def write_report(
    out: Path,
    *,
    title: str,
    result: dict[str, Any],
    truth: Sequence[tuple[str, ...]],
    leaf_pred: Sequence[tuple[str, ...]],
    confidence: npt.NDArray[np.float64],
    baseline_pred: Sequence[tuple[str, ...]] | None,
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    plots = _plots(out, truth, leaf_pred, confidence)
    per_class = metrics.per_class(truth, leaf_pred)
    confused = metrics.confused_pairs(truth, leaf_pred, depth=1)
    classes, matrix = metrics.confusion_matrix(truth, leaf_pred, depth=1, top=12)
    full = {
        **result,
        "per_class": per_class,
        "top_level_confused_pairs": confused,
        "top_level_confusion": {"classes": classes, "matrix": matrix.tolist()},
    }
    (out / "report.json").write_text(json.dumps(full, ensure_ascii=False, indent=2) + "\n")

    ours, base = result["ours"], result.get("baseline")
    lines = [
        f"# {title}",
        "",
        f"Test rows: {result['test_rows']} "
        f"({result['test_rows_with_unseen_label']} with a label never seen in training).",
        "",
    ]
    lines += ["| metric | prodcat | TF-IDF + LinearSVC |", "|---|---|---|"]
    for key, name in _HEADLINE:
        lines.append(
            f"| {name} | {_fmt(ours.get(key))} | {_fmt(base.get(key) if base else None)} |"
        )
    lines += _candidate_lines(result.get("model") or {})
    b = result["backoff"]
    lines += [
        "",
        "## Abstention and back-off (thresholds chosen on validation data)",
        "",
        f"Target precision {_fmt(result['thresholds'].get('target_precision'))}: "
        f"{b['leaf_coverage']:.1%} answered at leaf level (precision {b['leaf_precision']:.3f}), "
        f"{b['backed_off_share']:.1%} backed off to an ancestor "
        f"(precision {b['backed_off_precision']:.3f}), {b['abstained_share']:.1%} abstained.",
        "",
        "## Most confused top-level pairs",
        "",
        "| true | predicted | count |",
        "|---|---|---|",
    ]
    lines += [f"| {a} | {p} | {n} |" for a, p, n in confused]
    lines += [
        "",
        "Confusion matrix classes: " + "; ".join(f"{i}={c}" for i, c in enumerate(classes)),
    ]
    lines += [
        "",
        "## Per class (30 largest)",
        "",
        "| class | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
    ]
    for row in per_class[:30]:
        lines.append(
            f"| {row['class']} | {_fmt(row['precision'])} | {_fmt(row['recall'])} | "
            f"{_fmt(row['f1'])} | {row['support']} |"
        )
    lines += ["", *[f"![{p}]({p})" for p in plots], ""]
    if baseline_pred is not None:
        agree = np.mean([a == b for a, b in zip(leaf_pred, baseline_pred, strict=True)])
        lines.append(f"prodcat and the baseline agree on {agree:.1%} of test rows.")
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
