"""Figures of the report, drawn with matplotlib's object API on the Agg canvas (no display, no
global pyplot state), one PNG per call. Accuracies are plotted in points (percent)."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from hotncold.evaluation.metrics import METHODS

DPI = 110


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _wrap(fig: Figure, text: str) -> str:
    """Titles wrapped to the figure's width (setting labels are long)."""
    return textwrap.fill(text, max(30, int(fig.get_figwidth() * 12)))


def _log2_n(ax, ns) -> None:  # noqa: ANN001  (a matplotlib Axes)
    ax.set_xscale("log", base=2)
    ax.set_xticks(ns, [str(k) for k in ns])
    ax.set_xlabel("N")


def accuracy_vs_n(table: pd.DataFrame, labels: Mapping[str, str], title: str, path: Path) -> Path:
    """One panel per selection method; one line per configuration with its interval band."""
    fig = _figure(11, 7.5)
    axes = fig.subplots(2, 2, sharex=True).ravel()
    ns = sorted(table["N"].unique())
    for ax, method in zip(axes, METHODS):
        part = table[table["method"] == method]
        for config, line in part.groupby("config", sort=False):
            line = line.sort_values("N")
            (drawn,) = ax.plot(line["N"], 100 * line["mean"], marker="o", label=labels[config])
            ax.fill_between(
                line["N"], 100 * line["lo"], 100 * line["hi"], color=drawn.get_color(), alpha=0.15
            )
        ax.set_title(method if method != "pass" else "pass@N (coverage)")
        ax.set_ylabel("accuracy (%)")
        _log2_n(ax, ns)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(_wrap(fig, title), fontsize=10)
    fig.savefig(path)
    return path


def differences(rows: pd.DataFrame, title: str, ylabel: str, path: Path) -> Path:
    """A difference (in points) against N per scope, with its interval as error bars."""
    fig = _figure(8, 4.8)
    ax = fig.subplots()
    ns = sorted(rows["N"].unique())
    scopes = list(dict.fromkeys(rows["scope_label"]))
    width = 0.25 / max(1, len(scopes))
    for i, scope in enumerate(scopes):
        line = rows[rows["scope_label"] == scope].sort_values("N")
        shift = 2 ** ((i - (len(scopes) - 1) / 2) * width)  # spread the bars apart on log2 N
        mean = 100 * line["mean"].to_numpy()
        ax.errorbar(
            line["N"] * shift,
            mean,
            yerr=[mean - 100 * line["lo"].to_numpy(), 100 * line["hi"].to_numpy() - mean],
            marker="o",
            capsize=3,
            label=scope,
        )
    ax.axhline(0, color="black", lw=0.8)
    ax.set_ylabel(ylabel)
    _log2_n(ax, ns)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncols=2)
    ax.set_title(_wrap(fig, title), fontsize=10)
    fig.savefig(path)
    return path


def heatmap(grid: pd.DataFrame, title: str, path: Path) -> Path:
    """Rows x columns of accuracies in [0, 1], annotated in points."""
    fig = _figure(1.6 + 1.1 * grid.shape[1], 1.4 + 0.5 * grid.shape[0])
    ax = fig.subplots()
    values = 100 * grid.to_numpy(dtype=float)
    image = ax.imshow(values, cmap="viridis", vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(range(grid.shape[1]), [str(c) for c in grid.columns], rotation=30, ha="right")
    ax.set_yticks(range(grid.shape[0]), [str(r) for r in grid.index])
    for (i, j), v in np.ndenumerate(values):
        if not np.isnan(v):
            ax.text(j, i, f"{v:.1f}", ha="center", va="center", color="w" if v < 60 else "k")
    fig.colorbar(image, ax=ax, label="accuracy (%)")
    ax.set_title(_wrap(fig, title), fontsize=10)
    fig.savefig(path)
    return path


def oracle(gaps: pd.DataFrame, title: str, path: Path) -> Path:
    """Accuracy of each fixed temperature and of the per-problem oracle against N."""
    fig = _figure(7, 4.5)
    ax = fig.subplots()
    ns = sorted(gaps["N"].unique())
    for t, line in gaps.groupby("temperature", sort=False):
        line = line.sort_values("N")
        ax.plot(line["N"], 100 * line["accuracy"], marker="o", label=f"fixed {t}")
    first = gaps.drop_duplicates("N").sort_values("N")
    ax.plot(first["N"], 100 * first["oracle"], "k--", marker="s", label="per-problem oracle")
    ax.set_ylabel("accuracy (%)")
    _log2_n(ax, ns)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(_wrap(fig, title), fontsize=10)
    fig.savefig(path)
    return path


DIVERSITY_PANELS = (
    ("accuracy", "accuracy at N=n (%)", 100),
    ("coverage", "coverage pass@n (%)", 100),
    ("pass_at_1", "pass@1 (%)", 100),
    ("distinct_answers", "distinct final answers", 1),
    ("score_std", "PRM score spread (std)", 1),
    ("mean_tokens", "tokens per completion", 1),
)


def diversity(rows: pd.DataFrame, title: str, path: Path) -> Path:
    """Bars per temperature configuration: accuracy next to what explains it."""
    fig = _figure(12, 6.5)
    axes = fig.subplots(2, 3).ravel()
    names = rows["temperature"].tolist()
    for ax, (column, label, scale) in zip(axes, DIVERSITY_PANELS):
        ax.bar(range(len(rows)), scale * rows[column].to_numpy(dtype=float), color="tab:blue")
        ax.set_xticks(range(len(rows)), names, rotation=30, ha="right", fontsize=8)
        ax.set_title(label, fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(_wrap(fig, title), fontsize=10)
    fig.savefig(path)
    return path


def compute(
    rows: pd.DataFrame, labels: Mapping[str, str], prm_column: str, title: str, path: Path
) -> Path:
    """Accuracy against generated tokens, against PRM compute and against the FLOPs of both,
    one line per configuration."""
    fig = _figure(16, 4.8)
    axes = fig.subplots(1, 3, sharey=True)
    prm_label = {"prm_tokens": "PRM tokens per problem", "prm_steps": "PRM steps per problem"}
    for ax, column, xlabel in (
        (axes[0], "gen_tokens", "generated tokens per problem"),
        (axes[1], prm_column, prm_label[prm_column]),
        (axes[2], "flops", "FLOPs per problem (generator + PRM)"),
    ):
        for config, line in rows.groupby("config", sort=False):
            line = line[line[column] > 0].sort_values(column)
            if line.empty:
                continue
            (drawn,) = ax.plot(line[column], 100 * line["mean"], marker="o", label=labels[config])
            ax.fill_between(
                line[column], 100 * line["lo"], 100 * line["hi"], color=drawn.get_color(), alpha=0.1
            )
        ax.set_xscale("log", base=10 if column == "flops" else 2)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy (%)")
    axes[0].legend(fontsize=8)
    fig.suptitle(_wrap(fig, title), fontsize=10)
    fig.savefig(path)
    return path
