"""Per-feature L2 strengths against one grid-searched strength and L1.

A logistic model on 8 of 100 Gaussian features (the true support is known),
600 training rows. Three ways to regularize it:

- ``GridSearchCV(LogisticRegression, C in 20 values, cv=5)``: one L2 strength
  for all features, what most users would run;
- ``LogisticRegressionCV(penalty="l1", solver="liblinear")``: sparsity by L1;
- ``HOLogisticRegression(learn="feature_alpha")`` with its defaults: one L2
  strength per feature (100 hyperparameters, out of reach of a grid) by the
  model's evidence, then 5 folds decide between that, the same with the
  features the posterior cannot tell from zero dropped, and one strength for
  all (see the user guide's "Avoiding validation overfitting").

The script prints the test log-loss and fit time of each, and how well each
finds the true support (features kept, and how many of them are true). With
``--plot`` it saves ``plot_feature_regularization.png``: the learned strengths,
sorted, with the true features in orange and the grid's single strength as a
line (:class:`~skfarho.display.FeatureStrengthDisplay`), and the coefficients
of the three models on the true features and the others.

Run ``python examples/plot_feature_regularization.py [--plot]``.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.metrics import log_loss
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.preprocessing import StandardScaler

from skfarho import HOLogisticRegression

N_FEATURES = 100
N_RELEVANT = 8


def make_data(random_state=0):
    """A logistic model on the first ``N_RELEVANT`` of ``N_FEATURES`` features.

    Parameters
    ----------
    random_state : int, default=0
        Seed of the data and the split.

    Returns
    -------
    X_train, X_test, y_train, y_test : ndarray
        The standardized 600 / 600 split.
    relevant : ndarray of bool of shape (N_FEATURES,)
        The true support.
    """
    rng = np.random.default_rng(random_state)
    X = rng.normal(size=(1200, N_FEATURES))
    coef = np.zeros(N_FEATURES)
    coef[:N_RELEVANT] = rng.choice([-1, 1], N_RELEVANT) * np.linspace(1.5, 0.5,
                                                                      N_RELEVANT)
    y = (rng.random(len(X)) < 1.0 / (1.0 + np.exp(-X @ coef))).astype(int)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.5, stratify=y, random_state=random_state)
    scaler = StandardScaler().fit(X_train)
    return (scaler.transform(X_train), scaler.transform(X_test), y_train, y_test,
            coef != 0)


def fit_all(X, y):
    """The three models fitted on ``X, y``, with their fit times in seconds.

    Parameters
    ----------
    X, y : ndarray
        Training data.

    Returns
    -------
    dict
        Name -> (fitted model, seconds).
    """
    models = {
        "GridSearchCV (one L2 C)": GridSearchCV(
            LogisticRegression(max_iter=2000), {"C": np.logspace(-4, 4, 20)},
            cv=5, scoring="neg_log_loss", n_jobs=-1),
        "L1 LogisticRegressionCV": LogisticRegressionCV(
            Cs=np.logspace(-3, 1, 20), l1_ratios=(1.0,), solver="liblinear",
            cv=5, scoring="neg_log_loss", n_jobs=-1, use_legacy_attributes=False),
        "skfarho feature_alpha": HOLogisticRegression(learn=("feature_alpha",),
                                                      random_state=0),
    }
    fitted = {}
    for name, model in models.items():
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # scikit-learn 1.8 L1 API
            model.fit(X, y)
        fitted[name] = model, time.perf_counter() - start
    return fitted


def coefficients(model):
    """The coefficients of a fitted model (a search's best estimator's)."""
    model = getattr(model, "best_estimator_", model)
    return np.ravel(model.coef_)


def plot(fitted, relevant, path):
    """The learned strengths (sorted) and the three models' coefficients."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from skfarho.display import FeatureStrengthDisplay

    ours = fitted["skfarho feature_alpha"][0]
    grid = fitted["GridSearchCV (one L2 C)"][0]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 7))
    FeatureStrengthDisplay.from_estimator(
        ours, relevant=relevant,
        reference={"GridSearchCV: alpha = 1 / C": 1.0 / grid.best_params_["C"]},
        ax=top)
    top.set_title(f"learned strengths (setting {ours.setting_!r}); orange: the "
                  f"{N_RELEVANT} true features")
    order = np.r_[np.flatnonzero(relevant), np.flatnonzero(~relevant)]
    for i, (name, (model, _)) in enumerate(fitted.items()):
        bottom.plot(np.abs(coefficients(model))[order], "o", ms=3, color=f"C{i}",
                    label=name)
    bottom.axvline(N_RELEVANT - 0.5, color="0.5", ls=":")
    bottom.set_xlabel(f"features: the {N_RELEVANT} true ones, then the others")
    bottom.set_ylabel("|coef_|")
    bottom.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    """Fit the three models and print test log-loss, time and support found.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (``--plot``).

    Returns
    -------
    int
        Exit status.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plot", action="store_true",
                        help="save plot_feature_regularization.png in the "
                             "working directory")
    args = parser.parse_args(argv)

    X_train, X_test, y_train, y_test, relevant = make_data()
    print(f"{len(y_train)} training rows, {N_FEATURES} features, {N_RELEVANT} "
          "of them in the true model")
    fitted = fit_all(X_train, y_train)
    print(f"\n{'model':<26}{'fit (s)':>8}{'test log-loss':>15}{'kept':>6}"
          f"{'true kept':>11}")
    for name, (model, seconds) in fitted.items():
        kept = np.abs(coefficients(model)) > 1e-12
        print(f"{name:<26}{seconds:>8.1f}"
              f"{log_loss(y_test, model.predict_proba(X_test)):>15.4f}"
              f"{kept.sum():>6d}{(kept & relevant).sum():>8d}/{N_RELEVANT}")
    ours = fitted["skfarho feature_alpha"][0]
    print(f"\nskfarho's folds chose {ours.setting_!r}; mean held-out log-loss per "
          "candidate:")
    for setting, loss in zip(ours.cv_results_["setting"],
                             ours.cv_results_["mean_test_loss"], strict=True):
        print(f"  {setting:<8} {loss:.4f}")
    print("(the first fit in a process includes XLA's compilation)")

    if args.plot:
        path = Path.cwd() / "plot_feature_regularization.png"
        plot(fitted, relevant, path)
        print(f"plot saved to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
