"""Per-feature strengths that beat the grid (issue 11): the shipping default.

``HOLogisticRegression(learn="feature_alpha")`` and
``HORidge(learn="feature_alpha")`` with default arguments run the evidence
recipe of :mod:`skfarho._relevance` (per-feature strengths by the evidence,
pruning threshold and single-or-per-feature choice by 5-fold CV). Compared,
on the same (stratified) 75/25 train/test split per seed, standardized with
the training statistics:

- ``grid``: ``GridSearchCV(LogisticRegression, 30 C in [1e-4, 1e4], cv=5,
  scoring="neg_log_loss", n_jobs=-1)`` (the single-strength fit);
- ``l1``: ``LogisticRegressionCV(penalty="l1", solver="liblinear", Cs=30 in
  [1e-3, 10], cv=5, scoring="neg_log_loss", n_jobs=-1)`` (500-feature problem
  only: liblinear spends minutes on ``C > 10``, which is never chosen);
- ``skfarho``: the estimator with ``learn=("feature_alpha",)`` and
  ``random_state=seed``, nothing else set; ``setting`` is what its folds chose;
- regression: ``ARDRegression()``, ``RidgeCV(alphas=30 in [1e-4, 1e4])``.

Data: ``synthetic500`` = ``make_classification(n_samples=2000, n_features=500,
n_informative=20, n_redundant=0, random_state=seed)``; breast_cancer, wine,
digits, binary_digits (``digit >= 5``) and diabetes from
:mod:`skfarho._comparison` (split ``random_state=seed``);
``regression500`` = ``make_regression(n_samples=300, n_features=500,
n_informative=20, noise=10, random_state=seed)``. Medians over seeds. Each
data set's first skfarho fit includes XLA's compilation (``seconds`` of
seed 0); later seeds reuse the programs of equal shapes.

Usage::

    python benchmarks/bench_feature_alpha.py
    python benchmarks/bench_feature_alpha.py --datasets synthetic500 --seeds 0

OpenBLAS's threads make LAPACK 40x slower on a loaded 2-core machine (a
513 x 513 Cholesky: 0.4 s instead of 0.01 s); the script sets
``OPENBLAS_NUM_THREADS=1`` unless it is set.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from machine import machine_info  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
CLASSIFICATION = ("synthetic500", "breast_cancer", "wine", "digits", "binary_digits")
REGRESSION = ("regression500", "diabetes")


# ---- the benchmark -------------------------------------------------------------
def load(name, seed):
    """Standardized train/test split of a data set (stratified for classifiers)."""
    from sklearn.datasets import make_classification, make_regression
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    from skfarho._comparison import load_dataset

    if name == "synthetic500":
        X, y = make_classification(n_samples=2000, n_features=500, n_informative=20,
                                   n_redundant=0, random_state=seed)
    elif name == "regression500":
        X, y = make_regression(n_samples=300, n_features=500, n_informative=20,
                               noise=10, random_state=seed)
    else:
        data = load_dataset(name)
        X, y = data.X, data.y
    classification = name in CLASSIFICATION
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=seed,
        stratify=y if classification else None)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


def _sklearn_loss(classification, model, X, y):
    from sklearn.metrics import log_loss, mean_squared_error

    if classification:
        return float(log_loss(y, model.predict_proba(X), labels=model.classes_))
    return float(mean_squared_error(y, model.predict(X)))


def run_baseline(method, X, y, X_test, y_test, classification):
    """Fit one scikit-learn baseline; ``(test loss, seconds, details)``."""
    from sklearn.linear_model import (
        ARDRegression,
        LogisticRegression,
        LogisticRegressionCV,
        RidgeCV,
    )
    from sklearn.model_selection import GridSearchCV

    grid = np.logspace(-4, 4, 30)
    start = time.perf_counter()
    if method == "grid":
        model = GridSearchCV(LogisticRegression(max_iter=2000), {"C": grid}, cv=5,
                             scoring="neg_log_loss", n_jobs=-1).fit(X, y)
        details = {"C": float(model.best_params_["C"])}
    elif method == "l1":
        model = LogisticRegressionCV(Cs=np.logspace(-3, 1, 30), penalty="l1",
                                     solver="liblinear", cv=5, scoring="neg_log_loss",
                                     n_jobs=-1, max_iter=1000).fit(X, y)
        details = {"C": float(model.C_[0]), "nonzero": int((model.coef_ != 0).sum())}
    elif method == "ard_regression":
        model = ARDRegression().fit(X, y)
        details = {"nonzero": int(np.sum(model.lambda_ < model.threshold_lambda))}
    elif method == "ridgecv":
        model = RidgeCV(alphas=grid).fit(X, y)
        details = {"alpha": float(model.alpha_)}
    else:
        raise ValueError(method)
    seconds = time.perf_counter() - start
    return _sklearn_loss(classification, model, X_test, y_test), seconds, details


def run_skfarho(X, y, X_test, y_test, classification, seed):
    """The estimator's default ``learn="feature_alpha"``: ``(loss, s, details)``."""
    from skfarho import HOLogisticRegression, HORidge

    estimator = (HOLogisticRegression if classification else HORidge)(
        learn=("feature_alpha",), random_state=seed)
    start = time.perf_counter()
    model = estimator.fit(X, y)
    seconds = time.perf_counter() - start
    details = {"setting": model.setting_,
               "kept": int(np.isfinite(model.alpha_).sum()),
               "cv_loss": dict(zip(model.cv_results_["setting"].tolist(),
                                   np.round(model.cv_results_["mean_test_loss"],
                                            5).tolist(), strict=True))}
    return _sklearn_loss(classification, model, X_test, y_test), seconds, details


METHODS = {"classification": ("grid", "l1", "skfarho"),
           "regression": ("ard_regression", "ridgecv", "skfarho")}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+",
                        default=list(CLASSIFICATION + REGRESSION))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=None,
                        help="subset of grid l1 ard_regression ridgecv skfarho")
    parser.add_argument("--output", type=Path,
                        default=RESULTS / "feature_alpha.json")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning)
    from sklearn.exceptions import ConvergenceWarning

    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    rows = []
    for name in args.datasets:
        classification = name in CLASSIFICATION
        methods = METHODS["classification" if classification else "regression"]
        if args.methods:
            methods = [m for m in methods if m in args.methods]
        if name != "synthetic500":
            methods = [m for m in methods if m != "l1"]
        for seed in args.seeds:
            X, X_test, y, y_test = load(name, seed)
            for method in methods:
                if method == "skfarho":
                    loss, seconds, details = run_skfarho(X, y, X_test, y_test,
                                                         classification, seed)
                    rows.append({"dataset": name, "seed": seed, "method": method,
                                 "loss": loss, "seconds": seconds, **details})
                    print(json.dumps(rows[-1]), flush=True)
                    continue
                loss, seconds, details = run_baseline(method, X, y, X_test, y_test,
                                                      classification)
                rows.append({"dataset": name, "seed": seed, "method": method,
                             "loss": loss, "seconds": seconds, **details})
                print(json.dumps(rows[-1]), flush=True)
    table = summary_table(rows)
    print(table)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(
        {"benchmark": "feature_alpha", "machine": machine_info(),
         "config": {"seeds": args.seeds},
         "rows": rows, "table": table}, indent=1))
    print(f"wrote {args.output}")


def summary_table(rows):
    """Markdown: per data set and method, losses per seed, median, median time."""
    lines = ["| data set | method | test loss per seed | median | vs grid / ridgecv "
             "| median s |", "|---|---|---|---|---|---|"]
    keys = list(dict.fromkeys((r["dataset"], r["method"]) for r in rows))
    medians = {}
    for dataset, method in keys:
        mine = [r for r in rows if r["dataset"] == dataset and r["method"] == method]
        medians[dataset, method] = statistics.median(r["loss"] for r in mine)
    for dataset, method in keys:
        mine = [r for r in rows if r["dataset"] == dataset and r["method"] == method]
        losses = " / ".join(f"{r['loss']:.4f}" for r in mine)
        reference = medians.get((dataset, "grid"), medians.get((dataset, "ridgecv")))
        ratio = (f"{medians[dataset, method] / reference - 1:+.1%}"
                 if reference else "")
        times = [r["seconds"] for r in mine if r.get("seconds") is not None]
        seconds = f"{statistics.median(times):.1f}" if times else ""
        lines.append(f"| {dataset} | {method} | {losses} | "
                     f"{medians[dataset, method]:.4f} | {ratio} | {seconds} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
