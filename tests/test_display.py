"""The displays: drawn data equal the fitted attributes, panels, masks, errors."""

import sys
import warnings

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from skfarho.display import (
    FeatureStrengthDisplay,
    HyperparameterPathDisplay,
    SampleWeightDisplay,
)

pytestmark = pytest.mark.no_x64


@pytest.fixture
def plt():
    """pyplot on the Agg backend; every figure closed afterwards."""
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield plt
    plt.close("all")


class Fitted:
    """A stand-in fitted estimator: the given attributes and a no-op ``fit``."""

    def __init__(self, **attributes):
        vars(self).update(attributes)

    def fit(self, X, y=None):
        return self

    def transform(self, X):  # a pipeline checks its steps' methods
        return X


@pytest.fixture
def fitted(rng):
    n_steps, n_features, n_rows = 6, 12, 40
    weights = rng.uniform(0, 1, size=(n_steps, n_rows))
    weights[:, :8] = 0.5  # validation rows: never trained, their initial weight
    return Fitted(
        objective_curve_=np.sort(rng.uniform(0.3, 0.7, n_steps))[::-1],
        objective_name_="validation log-loss",
        hyperparameter_path_={
            "alpha": np.exp(rng.normal(size=(n_steps, n_features))),
            "sample_weight": weights,
            "learning_rate": np.linspace(0.1, 0.3, n_steps)},
        alpha_=np.exp(3 * rng.normal(size=n_features)),
        sample_weight_=np.where(np.arange(n_rows) < 8, np.nan, weights[-1]),
        label_quality_=rng.uniform(size=n_rows))


def test_path_draws_objective_and_each_hyperparameter(plt, fitted):
    display = HyperparameterPathDisplay.from_estimator(fitted, max_lines=20)
    path = fitted.hyperparameter_path_
    assert display.figure_ is display.ax_.figure
    assert display.ax_ is display.axes_[0] and len(display.axes_) == 4
    np.testing.assert_array_equal(display.line_.get_ydata(), fitted.objective_curve_)
    np.testing.assert_array_equal(display.line_.get_xdata(), np.arange(1, 7))
    assert display.ax_.get_ylabel() == "validation log-loss"
    assert [ax.get_ylabel() for ax in display.axes_[1:]] == [
        "alpha", "sample_weight\n(quantiles of 32)", "learning_rate"]
    assert [ax.get_yscale() for ax in display.axes_[1:]] == ["log", "linear", "linear"]
    # 12 strengths <= max_lines: one line each; 40 weights: quantile lines
    alpha_lines = display.hyperparameter_lines_["alpha"]
    assert len(alpha_lines) == 12
    np.testing.assert_array_equal(alpha_lines[3].get_ydata(), path["alpha"][:, 3])
    weight_lines = display.hyperparameter_lines_["sample_weight"]
    assert [line.get_label() for line in weight_lines] == [
        "min", "10%", "median", "90%", "max"]
    # over the rows trained on only (sample_weight_ not NaN)
    np.testing.assert_allclose(weight_lines[2].get_ydata(),
                               np.median(path["sample_weight"][:, 8:], axis=1))
    np.testing.assert_array_equal(path["sample_weight"][:, :8], 0.5)  # not mutated
    assert len(display.hyperparameter_lines_["learning_rate"]) == 1


def test_path_draws_a_broadcast_scalar_as_one_line(plt):
    alpha = np.repeat(np.geomspace(1, 0.01, 5)[:, None], 30, axis=1)
    display = HyperparameterPathDisplay(objective=np.ones(5),
                                        hyperparameters={"alpha": alpha}).plot()
    lines = display.hyperparameter_lines_["alpha"]
    assert len(lines) == 1
    np.testing.assert_array_equal(lines[0].get_ydata(), alpha[:, 0])
    assert display.ax_.get_ylabel() == "outer objective"


def test_path_without_steps_raises(plt):
    with pytest.raises(ValueError, match="no outer steps"):
        HyperparameterPathDisplay.from_estimator(
            Fitted(objective_curve_=np.empty(0), hyperparameter_path_={}))


def test_path_axes_given_as_one_bounding_axes_or_one_per_panel(plt, fitted):
    figure, ax = plt.subplots()
    display = HyperparameterPathDisplay.from_estimator(fitted, ax=ax)
    assert display.figure_ is figure and not ax.axison
    assert len(display.axes_) == 4 and ax not in display.axes_
    figure, axes = plt.subplots(4, 1)
    display = HyperparameterPathDisplay.from_estimator(fitted, ax=axes)
    assert list(display.axes_) == list(axes)
    with pytest.raises(ValueError, match="draws 4 panels; ax holds 2"):
        HyperparameterPathDisplay.from_estimator(fitted, ax=axes[:2])


def test_displays_check_the_estimator_is_fitted(plt):
    for display in (HyperparameterPathDisplay, FeatureStrengthDisplay,
                    SampleWeightDisplay):
        with pytest.raises(NotFittedError):
            display.from_estimator(Fitted())


def test_dropped_features_reach_a_hatched_ceiling(plt):
    alpha = np.array([2.0, np.inf, 0.5, np.inf, 30.0])
    display = FeatureStrengthDisplay(alpha=alpha).plot()
    np.testing.assert_array_equal(display.order_, [2, 0, 4, 1, 3])
    heights = [bar.get_height() for bar in display.bars_]
    np.testing.assert_allclose(heights, [0.5, 2.0, 30.0, 300.0, 300.0])
    assert [bar.get_hatch() for bar in display.bars_] == [None] * 3 + ["//"] * 2
    legend = [text.get_text() for text in display.ax_.get_legend().get_texts()]
    assert "dropped (2)" in legend


def test_strength_bars_are_sorted_and_colored_by_relevance(plt, fitted):
    relevant = [2, 5, 7]
    display = FeatureStrengthDisplay.from_estimator(
        fitted, relevant=relevant, reference={"GridSearchCV": 4.0})
    order = np.argsort(fitted.alpha_)
    np.testing.assert_array_equal(display.order_, order)
    heights = [bar.get_height() for bar in display.bars_]
    np.testing.assert_allclose(heights, fitted.alpha_[order])
    assert display.ax_.get_yscale() == "log"
    labels = [label.get_text() for label in display.ax_.get_xticklabels()]
    assert labels == [str(j) for j in order]
    colors = np.array([bar.get_facecolor() for bar in display.bars_])
    is_relevant = np.isin(order, relevant)
    assert len(np.unique(colors[is_relevant], axis=0)) == 1
    assert not np.any(np.all(colors[~is_relevant] == colors[is_relevant][0], axis=1))
    line = display.reference_lines_["GridSearchCV"]
    np.testing.assert_array_equal(line.get_ydata(), [4.0, 4.0])
    texts = [text.get_text() for text in display.ax_.get_legend().get_texts()]
    assert texts == ["relevant (3)", "other (9)", "GridSearchCV"]
    mask = np.isin(np.arange(12), relevant)
    by_mask = FeatureStrengthDisplay.from_estimator(fitted, relevant=mask)
    np.testing.assert_array_equal(
        [bar.get_facecolor() for bar in by_mask.bars_], colors)


def test_strength_names_from_the_pipeline_and_long_vectors_unlabeled(plt, rng):
    import pandas as pd

    columns = [f"gene_{j}" for j in range(4)]
    scaler = StandardScaler().fit(pd.DataFrame(rng.normal(size=(5, 4)),
                                               columns=columns))
    alpha = np.array([3.0, 1.0, 2.0, 0.5])
    pipeline = Pipeline([("scale", scaler), ("model", Fitted(alpha_=alpha))])
    display = FeatureStrengthDisplay.from_estimator(pipeline)
    labels = [label.get_text() for label in display.ax_.get_xticklabels()]
    assert labels == ["gene_3", "gene_1", "gene_2", "gene_0"]
    assert display.ax_.get_legend() is None
    names = [f"f{j}" for j in range(50)]
    display = FeatureStrengthDisplay.from_estimator(
        Fitted(alpha_=np.ones(50)), feature_names=names, max_names=40)
    labels = {label.get_text() for label in display.ax_.get_xticklabels()}
    assert not labels & set(names)
    display = FeatureStrengthDisplay.from_estimator(
        Fitted(alpha_=np.ones(50)), feature_names=names, max_names=50)
    labels = [label.get_text() for label in display.ax_.get_xticklabels()]
    assert labels == names


def test_strength_rejects_a_mask_of_the_wrong_length(plt, fitted):
    with pytest.raises(ValueError, match=r"shape \(12,\)"):
        FeatureStrengthDisplay.from_estimator(fitted, relevant=np.ones(3, bool))
    with pytest.raises(ValueError, match="integer indices"):
        FeatureStrengthDisplay.from_estimator(fitted, relevant=[0.5])


def test_sample_weights_skip_unused_rows_and_mark_mislabeled(plt, fitted):
    mislabeled = np.zeros(40, bool)
    mislabeled[[1, 9, 20, 33]] = True  # row 1 was not used for training
    display = SampleWeightDisplay.from_estimator(fitted, mislabeled=mislabeled,
                                                 bins=10)
    weights = fitted.sample_weight_
    used = np.isfinite(weights)
    assert len(display.axes_) == 3 and display.ax_ is display.axes_[0]
    counts = display.hist_[0]  # stacked: clean, then clean + mislabeled
    assert counts[-1].sum() == used.sum() == 32
    assert counts[0].sum() == (used & ~mislabeled).sum()
    np.testing.assert_array_equal(display.ranked_line_.get_ydata(),
                                  np.sort(weights[used]))
    assert set(display.order_) == set(np.flatnonzero(used))
    points = display.mislabeled_points_.get_offsets()
    np.testing.assert_array_equal(np.sort(points[:, 1]), np.sort(weights[[9, 20, 33]]))
    quality = display.quality_points_.get_offsets()
    np.testing.assert_array_equal(quality[:, 0], weights[used])
    np.testing.assert_array_equal(quality[:, 1], fitted.label_quality_[used])
    assert display.axes_[2].get_ylabel() == "label_quality_"


def test_sample_weights_without_label_quality_draw_two_panels(plt):
    weights = np.array([0.2, np.nan, 0.9, 0.5])
    display = SampleWeightDisplay.from_estimator(Fitted(sample_weight_=weights))
    assert len(display.axes_) == 2
    assert display.quality_points_ is None and display.mislabeled_points_ is None
    np.testing.assert_array_equal(display.order_, [0, 3, 2])


def test_plot_without_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    display = FeatureStrengthDisplay(alpha=np.ones(3))
    with pytest.raises(ImportError, match=r"skfarho\[plot\]"):
        display.plot()


def test_displays_of_a_real_fit(plt):
    from sklearn.datasets import make_classification

    from skfarho import HOLogisticRegression

    X, y = make_classification(n_samples=120, n_features=6, n_informative=2,
                               shuffle=False, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 3 outer steps: a ConvergenceWarning
        model = HOLogisticRegression(learn=("feature_alpha",), outer_steps=3,
                                     objective="validation",
                                     random_state=0).fit(X, y)
    path = HyperparameterPathDisplay.from_estimator(model)
    np.testing.assert_array_equal(path.line_.get_ydata(), model.objective_curve_)
    assert len(path.axes_) == 1 + len(model.hyperparameter_path_)
    strengths = FeatureStrengthDisplay.from_estimator(model, relevant=[0, 1])
    np.testing.assert_allclose([bar.get_height() for bar in strengths.bars_],
                               np.sort(model.alpha_))
    weights = SampleWeightDisplay.from_estimator(model)
    assert weights.hist_[0].sum() == np.isfinite(model.sample_weight_).sum()
