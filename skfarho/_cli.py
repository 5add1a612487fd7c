"""Command-line comparison of skfarho against a grid search (``python -m skfarho``).

The command fits a skfarho estimator (in a :class:`~sklearn.pipeline.Pipeline`
with :class:`~sklearn.preprocessing.StandardScaler`) and a
:class:`~sklearn.model_selection.GridSearchCV` over 30 values of the
regularization strength side by side on one fixed train/test split of a
built-in scikit-learn data set, prints a table (wall time, test loss, test
score) and saves a plot of test loss against wall time. Then (unless
``--no-showcase``) it runs the two problems of :mod:`skfarho._showcase` that a
grid cannot tune: per-feature strengths on a problem with a known support, and
learned example weights on digits with flipped labels, each with its table and
figure.

Everything lives in small functions so that tests can call :func:`main` with an
argument list, e.g. ``main(["--dataset", "wine", "--no-plot", "--quiet"])``. The
data sets, the competitors, the metrics and the table and plot helpers are
those of ``benchmarks/bench_vs_search.py``, shared through
:mod:`skfarho._comparison`.
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np

from skfarho._comparison import (
    GRID,
    GRID_CV,
    LEARN,
    evaluate,
    fit_timed,
    grid_search,
    ho_estimator,
    in_pipeline,
    label_panel,
    load_dataset,
    new_figure,
    render_table,
    save_figure,
    train_test,
    unrolled_only,
)
from skfarho._showcase import SIZES, feature_section, noise_section
from skfarho._showcase_plots import plot_features, plot_label_noise, showcase_path
from skfarho.core import DivergenceError

DATASETS = ("breast_cancer", "digits", "wine", "diabetes", "synthetic")
HYPERGRADIENTS = ("implicit", "reverse", "forward")
DEFAULT_PLOT = "skfarho_vs_gridsearch.png"


class MethodResult(NamedTuple):
    """One competitor's outcome on the test split.

    Attributes
    ----------
    method : str
        Short description of the method.
    seconds : float
        Wall time of ``fit`` (hyperparameter search and final fit included).
    loss : float
        Test loss: log-loss (classification) or mean squared error (regression).
    score : float
        Test accuracy (classification) or R² (regression).
    selected : str
        The selected regularization, for the table.
    """

    method: str
    seconds: float
    loss: float
    score: float
    selected: str


def _learn_names(text):
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = sorted(set(names) - set(LEARN))
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown name(s) {', '.join(unknown)}; choose among "
            f"{', '.join(LEARN)} (comma-separated)")
    return names


def _positive_int(text, minimum=1):
    value = int(text)
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}")
    return value


def build_parser():
    """The argument parser of ``python -m skfarho``.

    Returns
    -------
    argparse.ArgumentParser
        The parser.

    Examples
    --------
    >>> args = build_parser().parse_args(["--learn", "alpha,sample_weight"])
    >>> args.dataset, args.learn, args.hypergradient
    ('breast_cancer', ('alpha', 'sample_weight'), 'implicit')
    """
    invoked_as_module = os.path.basename(sys.argv[0]) == "__main__.py"
    parser = argparse.ArgumentParser(
        prog="python -m skfarho" if invoked_as_module else "skfarho",
        description=(
            "Compare skfarho's hypergradient tuning with GridSearchCV over "
            f"{len(GRID)} values of C in [1e-4, 1e4] ({GRID_CV}-fold CV, "
            "n_jobs=-1, scored by log-loss like skfarho's validation "
            "objective) on a built-in scikit-learn data set: HOLogisticRegression "
            "vs LogisticRegression, or HORidge vs Ridge (alpha in [1e-4, 1e4]) "
            "for --dataset diabetes (scored by MSE). Both run in a pipeline "
            "with StandardScaler on the same train/test split (stratified for "
            "classification)."),
        epilog=("The skfarho wall time includes JAX compilation, which "
                "dominates on small data sets."),
    )
    parser.add_argument("--dataset", choices=DATASETS, default="breast_cancer",
                        help="data set (default: %(default)s); synthetic is "
                             "make_classification(2000 rows, 500 features, 20 "
                             "informative)")
    parser.add_argument("--learn", type=_learn_names, default=("alpha",),
                        metavar="NAMES",
                        help="comma-separated hyperparameters to learn, among "
                             f"{', '.join(LEARN)} (default: alpha)")
    parser.add_argument("--hypergradient", choices=HYPERGRADIENTS,
                        default="implicit",
                        help="hypergradient method (default: %(default)s)")
    parser.add_argument("--cv", type=lambda text: _positive_int(text, 2),
                        default=None, metavar="K",
                        help="K-fold outer objective for skfarho (default: one "
                             "holdout split); GridSearchCV always uses "
                             f"{GRID_CV} folds")
    parser.add_argument("--outer-steps", type=_positive_int, default=50,
                        metavar="N",
                        help="outer-step budget of skfarho (default: %(default)s)")
    parser.add_argument("--random-state", type=int, default=0, metavar="SEED",
                        help="seed of the split, the data and the estimators "
                             "(default: %(default)s)")
    parser.add_argument("--plot", default=DEFAULT_PLOT, metavar="PATH",
                        help="PNG of test loss against wall time "
                             "(default: %(default)s); the showcase's figures "
                             "go next to it (skfarho_feature_strengths.png and "
                             "skfarho_label_noise.png by default)")
    parser.add_argument("--no-plot", action="store_true",
                        help="do not save any plot")
    parser.add_argument("--no-showcase", action="store_true",
                        help="skip the two problems a grid cannot tune "
                             "(per-feature strengths against one strength and "
                             "L1; learned example weights against no cleaning "
                             "and cleanlab on digits with 30%% flipped labels)")
    parser.add_argument("--showcase-size", choices=tuple(SIZES), default="default",
                        help=argparse.SUPPRESS)  # "small" for tests
    parser.add_argument("--quiet", action="store_true",
                        help="no progress output, only the results")
    parser.add_argument("--blas-threads", type=lambda text: _positive_int(text, 0),
                        default=1, metavar="N",
                        help="BLAS threads of this process, for both sides "
                             "(default: %(default)s; 0: the library's own "
                             "choice). The searches' workers use one each "
                             "already; on a busy machine more threads make "
                             "these small fits many times slower")
    return parser


@contextmanager
def blas_threads(n):
    """At most ``n`` BLAS threads in this process (no limit when ``n`` is 0).

    threadpoolctl limits the libraries already loaded: SciPy's and
    scikit-learn's solvers are imported first.
    """
    if not n:
        yield
        return
    import scipy.linalg  # noqa: F401
    import sklearn.linear_model  # noqa: F401
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=n, user_api="blas"):
        yield


def _competitors(args, task):
    """The (description, estimator, selected-description) of each method."""
    common = {"learn": args.learn, "hypergradient": args.hypergradient,
              "cv": args.cv, "outer_steps": args.outer_steps,
              "random_state": args.random_state, "verbose": 0 if args.quiet else 1}
    learn = ",".join(args.learn) or "()"
    ho = ho_estimator(task, **common)
    grid = grid_search(task, max_iter=5000)
    ho_name = f"skfarho {type(ho).__name__}(learn={learn})"
    estimator, name = (("LogisticRegression", "C") if task == "classification"
                       else ("Ridge", "alpha"))
    grid_name = f"GridSearchCV({estimator}), {len(GRID)} {name} x {GRID_CV}"
    return [(ho_name, in_pipeline(ho), _selected_ho),
            (grid_name, in_pipeline(grid), _selected_grid)]


def _selected_ho(model, task):
    alpha = model[-1].alpha_
    strength = float(np.exp(np.mean(np.log(alpha))))
    spread = "" if np.ptp(alpha) == 0 else " (geo. mean)"
    text = (f"C={1 / strength:.3g}" if task == "classification"
            else f"alpha={strength:.3g}") + spread
    learn = model[-1].learn
    learn = (learn,) if isinstance(learn, str) else tuple(learn)
    if "sample_weight" in learn:
        text += f", mean weight {np.nanmean(model[-1].sample_weight_):.3g}"
    if "learning_rate" in learn:
        text += f", learning rate {model[-1].learning_rate_:.3g}"
    return text


def _selected_grid(model, task):
    best = model[-1].best_params_
    return (f"C={best['C']:.3g}" if task == "classification"
            else f"alpha={best['alpha']:.3g}")


def compare(data, args, out=None):
    """Fit every competitor on the training split and score it on the test split.

    Parameters
    ----------
    data : Dataset
        The data set (see :func:`skfarho._comparison.load_dataset`).
    args : argparse.Namespace
        Parsed options (see :func:`build_parser`).
    out : file-like, default=sys.stdout
        Where progress lines go (nothing is written when ``args.quiet``).

    Returns
    -------
    results : list of MethodResult
        One per competitor, in the order they ran.
    notes : list of str
        Warnings raised while fitting (e.g. a ConvergenceWarning).
    """
    out = sys.stdout if out is None else out
    X_train, X_test, y_train, y_test = train_test(data, args.random_state)
    competitors = _competitors(args, data.task)
    results, notes = [], []
    for index, (name, model, selected) in enumerate(competitors, start=1):
        if not args.quiet:
            print(f"==> [{index}/{len(competitors)}] {name}: fitting on "
                  f"{len(y_train)} rows x {data.X.shape[1]} features ...",
                  file=out, flush=True)
        seconds, caught = fit_timed(model, X_train, y_train)
        notes.extend(f"{name}: {note}" for note in caught)
        loss, score = evaluate(model, X_test, y_test, data.task)
        results.append(MethodResult(name, seconds, loss, score,
                                    selected(model, data.task)))
        if not args.quiet:
            print(f"    done in {seconds:.2f}s", file=out, flush=True)
    return results, notes


def format_table(results, task):
    """The results as a plain-text table.

    Parameters
    ----------
    results : list of MethodResult
        See :func:`compare`.
    task : {"classification", "regression"}
        Names the loss and score columns.

    Returns
    -------
    str
        The table, one line per method.

    Examples
    --------
    >>> row = MethodResult("grid", 1.5, 0.25, 0.9, "C=1")
    >>> print(format_table([row], "classification"))
    method  wall time (s)  test log-loss  test accuracy  selected
    ------  -------------  -------------  -------------  --------
    grid             1.50         0.2500         0.9000  C=1
    """
    loss_name, score_name = (("test log-loss", "test accuracy")
                             if task == "classification" else ("test MSE", "test R2"))
    header = ["method", "wall time (s)", loss_name, score_name, "selected"]
    rows = [[r.method, f"{r.seconds:.2f}", f"{r.loss:.4f}",
             f"{r.score:.4f}", r.selected] for r in results]
    return render_table(header, rows, numeric={1, 2, 3})


def save_plot(results, path, data, task):
    """Save a scatter plot of test loss against wall time, one point per method.

    Parameters
    ----------
    results : list of MethodResult
        See :func:`compare`.
    path : str or path-like
        Destination PNG.
    data : Dataset
        Names the data set in the title.
    task : {"classification", "regression"}
        Names the loss axis.
    """
    fig, (ax,) = new_figure()
    for index, result in enumerate(results):
        ax.scatter(result.seconds, result.loss, s=80, color=f"C{index}",
                   label=f"{result.method} ({result.selected})", zorder=3)
        ax.annotate(f"{result.seconds:.1f}s", (result.seconds, result.loss),
                    textcoords="offset points", xytext=(6, 6))
    ax.set_xlim(0, 1.25 * max(result.seconds for result in results))
    ax.margins(y=0.25)
    n_samples, n_features = data.X.shape
    label_panel(ax, f"{data.name} ({n_samples} x {n_features}): lower left is "
                "better", task, "wall time of fit (s, JAX compilation included)",
                "small")
    save_figure(fig, path, dpi=120)


def main(argv=None):
    """Run the comparison, then the showcase; the entry point of ``python -m skfarho``.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 on success, 1 when a fit diverged, 2 on a usage error.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help or a usage error
        return int(exit_.code or 0)
    unrolled = unrolled_only(args.learn)
    if unrolled and args.hypergradient == "implicit":
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: --learn {unrolled[0]} needs --hypergradient "
              "reverse or forward (the implicit method does not depend on the "
              f"inner {unrolled[0].replace('_', ' ')})", file=sys.stderr)
        return 2
    with blas_threads(args.blas_threads):
        return _run(parser, args)


def _run(parser, args):
    data = load_dataset(args.dataset, args.random_state)
    try:
        results, notes = compare(data, args)
    except (DivergenceError, ValueError) as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 1
    n_samples, n_features = data.X.shape
    split = "stratified " if data.task == "classification" else ""
    print(f"\n{data.name}: {n_samples} samples x {n_features} features, 25% "
          f"{split}test split (random_state={args.random_state})")
    print(format_table(results, data.task))
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if not args.no_plot:
        save_plot(results, args.plot, data, data.task)
        print(f"plot saved to {args.plot}")
    if args.no_showcase:
        return 0
    try:
        showcase(args)
    except (DivergenceError, ValueError) as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 1
    return 0


SHOWCASE = (("per-feature L2 strengths", feature_section, "feature_strengths",
             plot_features),
            ("learned example weights", noise_section, "label_noise",
             plot_label_noise))


def showcase(args, out=None):
    """Run the showcase sections (:mod:`skfarho._showcase`); print their tables.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed options (see :func:`build_parser`): ``random_state``,
        ``showcase_size``, ``quiet``, ``plot`` and ``no_plot`` are read.
    out : file-like, default=sys.stdout
        Where the progress lines go.

    Returns
    -------
    list of Section
        One per section.
    """
    out = sys.stdout if out is None else out

    def progress(line):
        print(line, file=out, flush=True)

    sections = []
    for index, (name, run, figure, draw) in enumerate(SHOWCASE, start=1):
        if not args.quiet:
            progress(f"\n==> showcase {index}/{len(SHOWCASE)}: {name}")
        section = run(args.random_state, args.showcase_size,
                      None if args.quiet else progress)
        print(f"\n{section.title}")
        print(section.table)
        print("\n".join(section.lines))
        for note in section.notes:
            print(f"note: {note}", file=sys.stderr)
        if not args.no_plot:
            path = showcase_path(args.plot, figure)
            draw(section, path)
            print(f"plot saved to {path}")
        sections.append(section)
    return sections
