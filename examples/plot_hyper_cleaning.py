"""Data hyper-cleaning: learn one weight per training example to undo label noise.

The 10-class digits data set is split into 1000 training rows, 40% of whose
labels are flipped to another class at random, a small *clean* validation set
(200 rows) and a test set. :class:`~skfarho.HOLogisticRegression` with
``learn=("sample_weight",)`` gives each training row a weight in ``(0, 1)`` and
learns the 1000 weights by hypergradient descent on the clean validation loss
(Franceschi et al., 2017): rows whose label contradicts the validation data get
pushed towards weight 0.

The script prints

- the ROC AUC of ``-sample_weight_`` as a score for "this label was flipped"
  (0.5 = chance, 1 = perfect),
- the mean learned weight of the flipped and of the clean rows,
- the test accuracy of the hyper-cleaned model against the same model trained
  on the noisy labels with uniform weights, and against one trained on the
  clean rows only (an oracle that knows which labels were flipped).

The L2 strength stays fixed at ``alpha=1`` (``LogisticRegression(C=1)``) for all
three models; learning it together with the 1000 weights from only 200 clean
rows lets the outer problem overfit the validation set.

Run ``python examples/plot_hyper_cleaning.py`` (add ``--plot`` to save
``plot_hyper_cleaning.png``, the lowest-weight training images, in the working
directory).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import train_test_split

from skfarho import HOLogisticRegression

N_TRAIN, N_VALIDATION, FLIP_FRACTION = 1000, 200, 0.4


def make_data(random_state=0):
    """Digits split into noisy training, clean validation and test rows.

    Parameters
    ----------
    random_state : int, default=0
        Seed of the split and of the label noise.

    Returns
    -------
    dict
        ``X_train``, ``y_train`` (noisy), ``y_train_clean``, ``flipped`` (bool
        mask), ``X_val``, ``y_val``, ``X_test``, ``y_test``; pixels are scaled to
        ``[0, 1]``.
    """
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    X_train, X_rest, y_train, y_rest = train_test_split(
        X, y, train_size=N_TRAIN, stratify=y, random_state=random_state)
    X_val, X_test, y_val, y_test = train_test_split(
        X_rest, y_rest, train_size=N_VALIDATION, stratify=y_rest,
        random_state=random_state)
    rng = np.random.default_rng(random_state)
    flipped = np.zeros(N_TRAIN, dtype=bool)
    flipped[rng.choice(N_TRAIN, round(FLIP_FRACTION * N_TRAIN), replace=False)] = True
    noisy = y_train.copy()
    # a flipped label moves to one of the 9 other classes, uniformly
    noisy[flipped] = (y_train[flipped] + rng.integers(1, 10, flipped.sum())) % 10
    return {"X_train": X_train, "y_train": noisy, "y_train_clean": y_train,
            "flipped": flipped, "X_val": X_val, "y_val": y_val,
            "X_test": X_test, "y_test": y_test}


def plot(data, weights, path, n_images=16):
    """Save the training images with the lowest learned weights."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lowest = np.argsort(weights)[:n_images]
    fig, axes = plt.subplots(2, n_images // 2, figsize=(12, 4.8))
    for ax, row in zip(axes.ravel(), lowest, strict=True):
        ax.imshow(data["X_train"][row].reshape(8, 8), cmap="gray_r")
        flipped = data["flipped"][row]
        ax.set_title(f"label {data['y_train'][row]}"
                     + (f" (is {data['y_train_clean'][row]})" if flipped else "")
                     + f"\nw={weights[row]:.1e}", fontsize=8,
                     color="C3" if flipped else "k")
        ax.set_axis_off()
    fig.suptitle(f"The {n_images} lowest-weight training rows "
                 "(red: label was flipped)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    """Learn the example weights and report how well they find the flipped labels.

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
                        help="save plot_hyper_cleaning.png in the working directory")
    args = parser.parse_args(argv)

    data = make_data()
    flipped = data["flipped"]
    print(f"digits: {N_TRAIN} training rows ({flipped.mean():.0%} of labels "
          f"flipped), {N_VALIDATION} clean validation rows, "
          f"{len(data['y_test'])} test rows")

    cleaner = HOLogisticRegression(learn=("sample_weight",), alpha=1.0,
                                   outer_steps=60, outer_learning_rate=0.8,
                                   random_state=0)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # n_iter_ is printed
        cleaner.fit(data["X_train"], data["y_train"], X_val=data["X_val"],
                    y_val=data["y_val"])
    seconds = time.perf_counter() - start
    weights = cleaner.sample_weight_
    curve = cleaner.validation_loss_curve_
    print(f"learned {N_TRAIN} weights in {seconds:.1f}s ({cleaner.n_iter_} outer "
          f"steps; clean validation log-loss {curve[0]:.3f} -> {curve.min():.3f})")

    # the same objective with uniform weights: LogisticRegression(C=1 / alpha)
    noisy = LogisticRegression(C=1.0, max_iter=2000).fit(data["X_train"],
                                                         data["y_train"])
    oracle = LogisticRegression(C=1.0, max_iter=2000).fit(
        data["X_train"][~flipped], data["y_train"][~flipped])

    auc = roc_auc_score(flipped, -weights)
    print(f"\nROC AUC of -sample_weight_ for 'label flipped': {auc:.3f}")
    print(f"mean weight of flipped rows: {weights[flipped].mean():.3f}, of clean "
          f"rows: {weights[~flipped].mean():.3f}")
    lowest = np.argsort(weights)[: flipped.sum()]
    print(f"flipped among the {flipped.sum()} lowest-weight rows: "
          f"{flipped[lowest].mean():.1%}")

    print(f"\n{'model (alpha=1)':<40}{'test accuracy':>14}")
    for name, model in [("noisy labels, uniform weights", noisy),
                        ("noisy labels, learned sample_weight_", cleaner),
                        ("clean rows only (oracle)", oracle)]:
        accuracy = accuracy_score(data["y_test"], model.predict(data["X_test"]))
        print(f"{name:<40}{accuracy:>14.3f}")

    if args.plot:
        path = Path.cwd() / "plot_hyper_cleaning.png"
        plot(data, weights, path)
        print(f"\nplot saved to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
