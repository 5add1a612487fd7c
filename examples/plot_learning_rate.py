"""Learning the inner learning rate of unrolled gradient descent.

With ``hypergradient="reverse"`` the model is whatever ``inner_steps`` (here 100)
steps of gradient descent produce, so the inner learning rate is a
hyperparameter like any other: too small and the 100 steps stop far from the
minimum (an underfit model, a high validation loss). This example starts
:class:`~skfarho.HOLogisticRegression` on the breast-cancer data from a rate 10x
smaller than the default ``learning_rate="auto"`` (a ``1 / L`` curvature bound)
and learns it with ``learn=("learning_rate",)``.

skfarho keeps a learned rate below ``lr_max``, twice the larger of the starting
and the ``"auto"`` rate (``2 / L``, the stability limit of gradient descent for
the curvature bound ``L``). The first fit recovers the factor 10 and then stops
at that bound; but ``L`` is a conservative bound, so the script restarts from
the learned rate (``learning_rate=model.learning_rate_``, which raises
``lr_max``) until the rate stops growing. A restart reuses the compiled program,
as the starting rate is a traced value. The script prints the learned rate and
the validation loss curve of each fit, and the test log-loss at the start, at
the ``"auto"`` rate and at the learned rate: for a fixed number of steps the
best rate is well above the conservative ``1 / L``.

Run ``python examples/plot_learning_rate.py`` (add ``--plot`` to save
``plot_learning_rate.png``, the concatenated validation loss curve, in the
working directory).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skfarho import HOLogisticRegression

INNER_STEPS = 100
MAX_RESTARTS = 10


def make_model(learning_rate, learn=("learning_rate",)):
    """StandardScaler + HOLogisticRegression with unrolled (reverse) hypergradients.

    Parameters
    ----------
    learning_rate : "auto" or float
        Starting (or fixed) inner learning rate.
    learn : tuple of str, default=("learning_rate",)
        Hyperparameters to learn; ``()`` fits with ``learning_rate`` fixed.

    Returns
    -------
    sklearn.pipeline.Pipeline
        The unfitted pipeline.
    """
    return make_pipeline(StandardScaler(), HOLogisticRegression(
        learn=learn, hypergradient="reverse", inner_steps=INNER_STEPS,
        learning_rate=learning_rate, outer_steps=30, random_state=0))


def plot(curves, rates, path):
    """Save the concatenated validation loss curve, one colour per restart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    offset = 0
    for index, (curve, rate) in enumerate(zip(curves, rates[1:], strict=True)):
        steps = offset + np.arange(len(curve))
        ax.plot(steps, curve, marker=".", color=f"C{index % 10}",
                label=f"fit {index + 1}: rate -> {rate:.3g}")
        offset += len(curve)
    ax.set_xlabel("outer step (all fits, concatenated)")
    ax.set_ylabel("validation log-loss")
    ax.set_title(f"Learning the rate of {INNER_STEPS} unrolled GD steps "
                 f"(start {rates[0]:.3g})")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    """Learn the inner learning rate from a 10x too small start.

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
                        help="save plot_learning_rate.png in the working directory")
    args = parser.parse_args(argv)

    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0)

    def test_loss(model):
        return log_loss(y_test, model.predict_proba(X_test))

    # learn=() fits with the rate fixed; learning_rate_ reports the "auto" rate
    auto = make_model("auto", learn=()).fit(X_train, y_train)
    auto_rate = auto[-1].learning_rate_
    start_rate = auto_rate / 10
    start = make_model(start_rate, learn=()).fit(X_train, y_train)
    print(f"breast cancer, {len(y_train)} training rows, {INNER_STEPS} unrolled "
          f"gradient-descent steps")
    print(f"'auto' rate {auto_rate:.4g}; starting from {start_rate:.4g} (10x "
          "smaller)\n")

    print(f"{'fit':>3}{'start rate':>12}{'learned rate':>14}{'outer steps':>13}"
          f"{'val. loss':>20}{'time (s)':>10}")
    rates, curves, model = [start_rate], [], None
    for restart in range(1, MAX_RESTARTS + 1):
        model = make_model(rates[-1])
        began = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # restarts follow
            model.fit(X_train, y_train)
        seconds = time.perf_counter() - began
        curve = model[-1].objective_curve_
        rates.append(model[-1].learning_rate_)
        curves.append(curve)
        print(f"{restart:>3}{rates[-2]:>12.4g}{rates[-1]:>14.4g}"
              f"{model[-1].n_iter_:>13d}{curve[0]:>10.4f} -> {curve.min():.4f}"
              f"{seconds:>10.2f}")
        if rates[-1] < 1.05 * rates[-2]:  # the rate stopped growing
            break

    print(f"\nlearned rate {rates[-1]:.4g} = {rates[-1] / start_rate:.1f}x the "
          f"start, {rates[-1] / auto_rate:.1f}x 'auto'")
    print(f"validation log-loss {curves[0][0]:.4f} -> "
          f"{min(curve.min() for curve in curves):.4f}")
    print(f"\n{'inner learning rate':<30}{'test log-loss':>14}")
    for name, fitted in [(f"start ({start_rate:.3g}, fixed)", start),
                         (f"'auto' ({auto_rate:.3g}, fixed)", auto),
                         (f"learned ({rates[-1]:.3g})", model)]:
        print(f"{name:<30}{test_loss(fitted):>14.4f}")

    if args.plot:
        path = Path.cwd() / "plot_learning_rate.png"
        plot(curves, rates, path)
        print(f"\nplot saved to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
