"""Per-feature L2 strengths learned by hypergradient descent.

A binary problem with 40 features of which only the first 5 are informative
(``make_classification(..., shuffle=False)`` puts them first). Two
:class:`~skfarho.HOLogisticRegression` models tune their regularization on a
3-fold validation loss:

- ``learn=("alpha",)``: one L2 strength shared by all features;
- ``learn=("feature_alpha",)``: one L2 strength per feature (40 hyperparameters,
  out of reach of a grid search), a form of automatic relevance determination.

The per-feature model shrinks the noise features much harder than the
informative ones: the script prints the mean ``log10(alpha_)`` of each group, the
ROC AUC of ``-alpha_`` at telling informative from noise features, the features
ranked from least to most shrunk, and the test log-loss of both models. With
many free hyperparameters and a small validation set some noise features also
get small strengths (the outer problem overfits the validation folds a little).

Run ``python examples/plot_feature_regularization.py`` (add ``--plot`` to save
``plot_feature_regularization.png`` in the working directory).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from skfarho import HOLogisticRegression

N_FEATURES = 40
N_INFORMATIVE = 5


def make_data(random_state=0):
    """Scaled train/test splits and the mask of informative features.

    Parameters
    ----------
    random_state : int, default=0
        Seed of the data and the split.

    Returns
    -------
    X_train, X_test, y_train, y_test : ndarray
        The standardized split.
    informative : ndarray of bool, shape (N_FEATURES,)
        True for the informative features (the first ``N_INFORMATIVE``).
    """
    X, y = make_classification(
        n_samples=800, n_features=N_FEATURES, n_informative=N_INFORMATIVE,
        n_redundant=0, n_repeated=0, shuffle=False, random_state=random_state)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=random_state)
    scaler = StandardScaler().fit(X_train)
    informative = np.arange(N_FEATURES) < N_INFORMATIVE
    return (scaler.transform(X_train), scaler.transform(X_test), y_train, y_test,
            informative)


def fit(learn, X, y, outer_steps):
    """Fit a HOLogisticRegression that learns ``learn`` on 3 folds; time it.

    Parameters
    ----------
    learn : tuple of str
        Hyperparameters to learn.
    X, y : ndarray
        Training data.
    outer_steps : int
        Outer-step budget.

    Returns
    -------
    model : HOLogisticRegression
        The fitted model.
    seconds : float
        Wall time of ``fit`` (JAX compilation included).
    """
    model = HOLogisticRegression(learn=learn, cv=3, outer_steps=outer_steps,
                                 random_state=0)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # n_iter_ is printed
        model.fit(X, y)
    return model, time.perf_counter() - start


def plot(shared, per_feature, informative, path):
    """Bar charts of the learned strengths and coefficients per feature."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    index = np.arange(N_FEATURES)
    colors = np.where(informative, "C1", "C0")
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    top.bar(index, np.log10(per_feature.alpha_), color=colors)
    top.axhline(np.log10(shared.alpha_[0]), color="k", ls="--",
                label="shared alpha_ (learn='alpha')")
    top.set_ylabel("log10 alpha_ (per feature)")
    top.legend(loc="upper left")
    top.set_title("orange: informative features, blue: noise features")
    width = 0.4
    bottom.bar(index - width / 2, np.abs(shared.coef_[0]), width, color="0.6",
               label="|coef_|, one alpha")
    bottom.bar(index + width / 2, np.abs(per_feature.coef_[0]), width,
               color=colors, label="|coef_|, per-feature alpha")
    bottom.set_xlabel("feature")
    bottom.set_ylabel("|coef_|")
    bottom.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    """Fit both models and print how the per-feature strengths separate features.

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

    X_train, X_test, y_train, y_test, informative = make_data()
    print(f"{len(y_train)} training rows, {N_FEATURES} features, the first "
          f"{N_INFORMATIVE} informative")
    shared, shared_time = fit(("alpha",), X_train, y_train, outer_steps=50)
    per_feature, per_feature_time = fit(("feature_alpha",), X_train, y_train,
                                        outer_steps=150)

    print(f"\n{'model':<22}{'fit (s)':>8}{'outer steps':>13}{'val. loss':>11}"
          f"{'test log-loss':>15}{'test acc.':>11}")
    for name, model, seconds in [("learn='alpha'", shared, shared_time),
                                 ("learn='feature_alpha'", per_feature,
                                  per_feature_time)]:
        print(f"{name:<22}{seconds:>8.1f}{model.n_iter_:>13d}"
              f"{model.objective_curve_.min():>11.4f}"
              f"{log_loss(y_test, model.predict_proba(X_test)):>15.4f}"
              f"{accuracy_score(y_test, model.predict(X_test)):>11.3f}")

    log_alpha = np.log10(per_feature.alpha_)
    print(f"\nshared alpha_: {shared.alpha_[0]:.3g} "
          f"(log10 {np.log10(shared.alpha_[0]):.2f})")
    print(f"mean log10 alpha_, informative features: "
          f"{log_alpha[informative].mean():6.2f}")
    print(f"mean log10 alpha_, noise features:       "
          f"{log_alpha[~informative].mean():6.2f}")
    auc = roc_auc_score(informative, -log_alpha)
    print(f"ROC AUC of -alpha_ for 'informative': {auc:.3f} (0.5 = chance)")
    order = np.argsort(log_alpha)
    ranked = " ".join(f"{j}{'*' if informative[j] else ''}" for j in order)
    print("features from least to most shrunk (* = informative):")
    print(f"  {ranked}")
    ranks = np.flatnonzero(informative[order]) + 1
    print(f"ranks of the informative features (1 = least shrunk): "
          f"{', '.join(map(str, ranks))} of {N_FEATURES}")

    if args.plot:
        path = Path.cwd() / "plot_feature_regularization.png"
        plot(shared, per_feature, informative, path)
        print(f"plot saved to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
