"""skfarho against scikit-learn's searches: the pieces every comparison shares.

The main job (``python -m skfarho``, :mod:`skfarho._cli`) and
``benchmarks/bench_vs_search.py`` compare the same things in the same way: the
built-in data sets and their fixed 75/25 train/test split, the skfarho estimator
and the ``GridSearchCV`` over :data:`GRID` it is measured against (both behind a
``StandardScaler``), the timed fit, the test metrics, and the table and plot
helpers. They live here once; each caller keeps only its own protocol (one
in-process fit for the main job, warm and fresh-process timings for the
benchmark).
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np

LEARN = ("alpha", "feature_alpha", "sample_weight", "learning_rate")
"""The hyperparameters a comparison may learn (``learn`` of the estimators)."""
DATASETS = ("breast_cancer", "wine", "digits", "binary_digits", "diabetes",
            "synthetic")
REGRESSION = ("diabetes",)
GRID = np.logspace(-4, 4, 30)
"""The regularization strengths of the grid search (``C`` or Ridge's ``alpha``)."""
GRID_CV = 5
TEST_SIZE = 0.25
LOSS_NAMES = {"classification": "test log-loss", "regression": "test MSE"}


class Dataset(NamedTuple):
    """A built-in data set and its task.

    Attributes
    ----------
    name : str
        One of :data:`DATASETS`.
    X : ndarray of shape (n_samples, n_features)
        Features (float64).
    y : ndarray of shape (n_samples,)
        Targets.
    task : {"classification", "regression"}
        The learning task.
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    task: str


def load_dataset(name, random_state=0):
    """Load one of the built-in data sets.

    Parameters
    ----------
    name : {"breast_cancer", "wine", "digits", "binary_digits", "diabetes", \
"synthetic"}
        The data set; ``"binary_digits"`` is digits with ``y = digit >= 5``;
        ``"synthetic"`` is ``make_classification`` with 2000 rows, 500 features
        of which 20 are informative.
    random_state : int, default=0
        Seed of the synthetic data set.

    Returns
    -------
    Dataset
        The features, targets and task.

    Examples
    --------
    >>> data = load_dataset("wine")
    >>> data.X.shape, data.task
    ((178, 13), 'classification')
    """
    from sklearn.datasets import (
        load_breast_cancer,
        load_diabetes,
        load_digits,
        load_wine,
        make_classification,
    )

    if name == "synthetic":
        X, y = make_classification(n_samples=2000, n_features=500, n_informative=20,
                                   random_state=random_state)
    else:
        loader = {"breast_cancer": load_breast_cancer, "digits": load_digits,
                  "binary_digits": load_digits, "wine": load_wine,
                  "diabetes": load_diabetes}[name]
        X, y = loader(return_X_y=True)
        if name == "binary_digits":
            y = (y >= 5).astype(int)
    task = "regression" if name in REGRESSION else "classification"
    return Dataset(name, np.asarray(X, dtype=np.float64), np.asarray(y), task)


def train_test(data, random_state=0):
    """The fixed train/test split of a data set (stratified for classification).

    Parameters
    ----------
    data : Dataset
        See :func:`load_dataset`.
    random_state : int, default=0
        Seed of the split.

    Returns
    -------
    X_train, X_test, y_train, y_test : ndarray
        :data:`TEST_SIZE` of the rows in the test split.

    Examples
    --------
    >>> X_train, X_test, y_train, y_test = train_test(load_dataset("wine"))
    >>> len(y_train), len(y_test)
    (133, 45)
    """
    from sklearn.model_selection import train_test_split

    stratify = data.y if data.task == "classification" else None
    return train_test_split(data.X, data.y, test_size=TEST_SIZE, stratify=stratify,
                            random_state=random_state)


def unrolled_only(learn):
    """The names in ``learn`` that need an unrolled hypergradient.

    The implicit method differentiates the exact minimizer, which does not
    depend on the inner dynamics (the learning rate, for instance).

    Examples
    --------
    >>> unrolled_only(("alpha", "learning_rate"))
    ('learning_rate',)
    """
    from skfarho._hyperparameters import LEARNABLE

    return tuple(name for name in learn if LEARNABLE[name].unrolled_only)


# ---- the competitors --------------------------------------------------------
def in_pipeline(model):
    """``make_pipeline(StandardScaler(), model)``, as every competitor runs."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), model)


def ho_estimator(task, **params):
    """``HOLogisticRegression(**params)``, or ``HORidge(**params)`` for regression.

    Examples
    --------
    >>> ho_estimator("regression", learn=("alpha",))
    HORidge()
    """
    from skfarho.linear_model import HOLogisticRegression, HORidge

    return (HORidge if task == "regression" else HOLogisticRegression)(**params)


def grid_search(task, cv=GRID_CV, max_iter=1000):
    """The grid search skfarho is measured against.

    ``GridSearchCV`` over :data:`GRID` (``C`` of ``LogisticRegression``, or
    ``alpha`` of ``Ridge`` for regression), ``n_jobs=-1``, selected by the loss
    skfarho minimizes on its validation data (log-loss or squared error).

    Parameters
    ----------
    task : {"classification", "regression"}
        The learning task.
    cv : int or cross-validation generator, default=GRID_CV
        The folds.
    max_iter : int, default=1000
        ``max_iter`` of ``LogisticRegression``.

    Returns
    -------
    GridSearchCV
        Unfitted.

    Examples
    --------
    >>> grid_search("classification").param_grid["C"].shape
    (30,)
    """
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.model_selection import GridSearchCV

    if task == "regression":
        return GridSearchCV(Ridge(), {"alpha": GRID}, cv=cv, n_jobs=-1,
                            scoring="neg_mean_squared_error")
    return GridSearchCV(LogisticRegression(max_iter=max_iter), {"C": GRID}, cv=cv,
                        n_jobs=-1, scoring="neg_log_loss")


# ---- measuring --------------------------------------------------------------
def fit_timed(model, X, y, max_chars=None):
    """Fit; return the seconds and the warnings raised.

    Returns
    -------
    seconds : float
        Wall time of ``model.fit(X, y)``.
    notes : list of str
        The distinct warnings, ``"Category: message"`` (the message cut at
        ``max_chars``), sorted.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        model.fit(X, y)
        seconds = time.perf_counter() - start
    notes = sorted({f"{w.category.__name__}: {str(w.message)[:max_chars]}"
                    for w in caught})
    return seconds, notes


def evaluate(model, X_test, y_test, task):
    """``(loss, score)`` on the test split.

    Log-loss and accuracy for classification, mean squared error and R² for
    regression.
    """
    from sklearn.metrics import accuracy_score, log_loss, mean_squared_error, r2_score

    if task == "classification":
        proba = model.predict_proba(X_test)
        loss = log_loss(y_test, proba, labels=model.classes_)
        return float(loss), float(accuracy_score(y_test, model.predict(X_test)))
    prediction = model.predict(X_test)
    return (float(mean_squared_error(y_test, prediction)),
            float(r2_score(y_test, prediction)))


# ---- reporting --------------------------------------------------------------
def render_table(header, rows, numeric=(), markdown=False):
    """A table of strings, as aligned plain text or as markdown.

    Parameters
    ----------
    header : list of str
        Column names.
    rows : list of list of str
        The cells.
    numeric : collection of int, default=()
        Right-aligned columns.
    markdown : bool, default=False
        Markdown (``| a | b |`` rows) instead of space-aligned text with a rule
        of dashes under the header.

    Returns
    -------
    str
        The table, one line per row.

    Examples
    --------
    >>> print(render_table(["name", "time"], [["grid", "1.50"]], numeric={1}))
    name  time
    ----  ----
    grid  1.50
    >>> print(render_table(["name", "time"], [["grid", ""]], {1}, markdown=True))
    | name | time |
    |---|---:|
    | grid | |
    """
    if markdown:
        def line(cells):
            return "|" + "|".join(f" {cell} " if cell else " " for cell in cells) + "|"

        rule = "|" + "|".join("---:" if col in numeric else "---"
                              for col in range(len(header))) + "|"
        return "\n".join([line(header), rule, *(line(row) for row in rows)])
    widths = [max(len(line[col]) for line in [header, *rows])
              for col in range(len(header))]

    def text_line(cells):
        return "  ".join(cell.rjust(width) if col in numeric else cell.ljust(width)
                         for col, (cell, width) in enumerate(zip(cells, widths,
                                                                 strict=True))
                         ).rstrip()

    rule = ["-" * width for width in widths]
    return "\n".join([text_line(header), text_line(rule),
                      *(text_line(row) for row in rows)])


def new_figure(n_panels=1, columns=1, panel_size=(7, 4.5)):
    """A figure of test loss against wall time, one panel per data set.

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure (Agg backend), panels beyond ``n_panels`` hidden.
    axes : list of matplotlib.axes.Axes
        ``n_panels`` panels, row by row.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(columns, n_panels)
    n_rows = -(-n_panels // columns)
    fig, axes = plt.subplots(n_rows, columns, squeeze=False, figsize=(
        panel_size[0] * columns, panel_size[1] * n_rows))
    for ax in list(axes.flat)[n_panels:]:
        ax.set_visible(False)
    return fig, list(axes.flat)[:n_panels]


def label_panel(ax, title, task, xlabel, legend_size):
    """Title, axis labels (the loss named by ``task``), grid and legend."""
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(LOSS_NAMES[task])
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=legend_size, loc="best")


def save_figure(fig, path, dpi):
    """Lay out, save as PNG (creating the folder) and close."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
