"""The main job's pictures: one figure per showcase section (matplotlib)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skfarho._comparison import save_figure
from skfarho._showcase import final_step, short_name


def showcase_path(plot, name):
    """The path of a section's figure, next to the main plot.

    Examples
    --------
    >>> showcase_path("skfarho_vs_gridsearch.png", "label_noise").as_posix()
    'skfarho_label_noise.png'
    >>> showcase_path("out/run.png", "feature_strengths").as_posix()
    'out/run_feature_strengths.png'
    """
    plot = Path(plot)
    return plot.with_name(f"{plot.stem.partition('_vs_')[0]}_{name}"
                          f"{plot.suffix or '.png'}")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_features(section, path):
    """skfarho's strengths, sorted, against the grid's one strength (top), and
    every model's coefficients on the true features and the others (bottom)."""
    from skfarho.display import FeatureStrengthDisplay

    plt = _pyplot()
    relevant, outcomes = section.truth, section.outcomes
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 8))
    grid_C = float(np.ravel(final_step(outcomes[0].model).C_)[0])
    ours = outcomes[-1].model
    FeatureStrengthDisplay.from_estimator(
        ours, relevant=relevant, reference={"L2 grid: alpha = 1 / C": 1.0 / grid_C},
        ax=top)
    top.get_legend().set_loc("center right")  # off the least shrunk features
    top.set_title(f"skfarho's learned L2 strengths (setting "
                  f"{final_step(ours).setting_!r}); hatched: dropped")
    order = np.r_[np.flatnonzero(relevant), np.flatnonzero(~relevant)]
    for i, outcome in enumerate(outcomes):
        coef = np.abs(np.ravel(final_step(outcome.model).coef_))[order]
        bottom.plot(coef, "o", ms=3.5, color=f"C{i + 2}", alpha=0.8,
                    label=f"{short_name(outcome.method)}: test log-loss "
                          f"{outcome.loss:.4f}, {outcome.extra[0]} kept")
    bottom.axvline(relevant.sum() - 0.5, color="0.5", ls=":")
    bottom.set_xlabel(f"features: the {int(relevant.sum())} true ones, then the "
                      "others")
    bottom.set_ylabel("|coef_| (standardized features)")
    bottom.legend(fontsize="small")
    save_figure(fig, path, dpi=110)


def plot_label_noise(section, path):
    """skfarho's learned example weights, flipped rows in red (top), and every
    method's test accuracy and flagged rows' precision and recall (bottom)."""
    from skfarho.display import SampleWeightDisplay

    plt = _pyplot()
    flipped, outcomes = section.truth, section.outcomes
    fig = plt.figure(figsize=(12, 7.5))
    top, bottom = fig.add_gridspec(2, 1, height_ratios=(1.1, 1)).subplots()
    SampleWeightDisplay.from_estimator(outcomes[-1].model, mislabeled=flipped, ax=top)
    fig.suptitle(f"skfarho's learned example weights; red: the {flipped.sum()} "
                 "flipped labels")
    metrics = {"test accuracy": [o.accuracy for o in outcomes],
               "precision of flagged rows": [_number(o.extra[1]) for o in outcomes],
               "recall of flagged rows": [_number(o.extra[2]) for o in outcomes]}
    width = 0.8 / len(metrics)
    for i, (name, values) in enumerate(metrics.items()):
        positions = np.arange(len(outcomes)) + (i - 1) * width
        bars = bottom.bar(positions, values, width, label=name, color=f"C{i + 4}")
        bottom.bar_label(bars, fmt="%.3f", fontsize="small")
    bottom.set_xticks(np.arange(len(outcomes)), [
        f"{short_name(o.method)}\ntest log-loss {o.loss:.4f}" for o in outcomes])
    bottom.set_ylim(0, 1.15)
    bottom.legend(fontsize="small", ncols=len(metrics), loc="upper center")
    save_figure(fig, path, dpi=110)


def _number(cell):
    return float("nan") if cell == "-" else float(cell)
