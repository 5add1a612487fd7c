"""Benchmark skfarho against scikit-learn's hyperparameter searches.

Competitors, each inside ``make_pipeline(StandardScaler(), model)`` and fitted on
one fixed (stratified for classifiers) 75/25 train/test split per data set, the
same split for every method:

- ``grid``: ``GridSearchCV(LogisticRegression, 30 C in [1e-4, 1e4], cv=5,
  n_jobs=-1)``; on regression ``GridSearchCV(Ridge, 30 alpha in [1e-4, 1e4])``;
- ``lrcv``: ``LogisticRegressionCV(Cs=30, cv=5, n_jobs=-1)``; on regression
  ``RidgeCV(alphas=np.logspace(-4, 4, 30))``;
- ``grid-clean`` (hyper-cleaning data set only): ``grid`` fitted on the clean
  training labels, the reference for the accuracy gap;
- ``ho-<learn>-<hypergradient>``: ``HOLogisticRegression`` / ``HORidge`` with
  ``learn`` one or more (joined by ``+``) of ``alpha``, ``feature_alpha``,
  ``sample_weight`` and ``learning_rate`` (``sample_weight`` alone keeps the
  estimator's ``alpha=1``), and ``hypergradient`` one of ``implicit``, ``reverse``,
  ``forward``, ``rtho``, ``trho``; ``--extra-params`` adds estimator kwargs.

Each (data set, method) is timed in fresh Python processes (this file re-run with
a hidden ``--child``), with JAX's persistent compilation cache disabled:

- *warm*: one process imports everything, fits once untimed, then times
  ``--repeats`` fits of fresh (unfitted) copies; the median is reported;
- *cold*: ``--repeats`` processes that import everything (timed apart) and fit
  once (timed: JAX compilation, loky worker start-up and so on included).

Reported: wall time (median), test log-loss and accuracy (MSE and R² for
regression), the selected hyperparameters and, on the hyper-cleaning data set,
the ROC AUC of ``sample_weight_`` at telling flipped training rows from clean
ones. Output: JSON, a markdown table (printed, and stored in the JSON) and a
plot of test loss against wall time. HOAG's published figures are added as
quoted rows, never mixed with measurements.

The data sets, the split, ``grid``, the skfarho estimators, the timed fit, the
test metrics and the table and plot helpers are :mod:`skfarho._comparison`'s,
shared with the main job (``python -m skfarho``); every child imports it (and so
skfarho and JAX) inside its timed imports.

Usage::

    python benchmarks/bench_vs_search.py                   # all data sets
    python benchmarks/bench_vs_search.py --quick           # smoke run, ~2 minutes
    python benchmarks/bench_vs_search.py --datasets digits_noisy \\
        --methods grid grid-clean 'ho-*sample_weight-*' \\
        --extra-params '{"outer_steps": 100}'
"""

from __future__ import annotations

import argparse
import fnmatch
import itertools
import json
import statistics
import sys
import time
from pathlib import Path

from machine import machine_info, report_child_result
from machine import run_child as run_fresh

# skfarho._comparison (data sets, grid, metrics, tables) is imported inside the
# functions, so that a child times it with the other imports
RESULTS = Path(__file__).resolve().parent / "results"
SEED = 0

NOISY = ("digits_noisy",)
DATASETS = ("breast_cancer", "wine", "digits", "binary_digits", "diabetes",
            "synthetic", *NOISY)  # skfarho._comparison.DATASETS and the noisy one
QUICK_DATASETS = ("breast_cancer", "wine")
CLEAN_VALIDATION = 0.2  # of the training split, kept clean (hyper-cleaning)
HYPERGRADIENTS = ("implicit", "reverse", "forward", "rtho", "trho")
BASELINES = ("grid", "lrcv", "grid-clean")
DEFAULT_METHODS = ("grid", "lrcv", "ho-alpha-implicit", "ho-feature_alpha-implicit")
NOISY_EXTRA_METHODS = ("grid-clean", "ho-sample_weight-implicit",
                       "ho-alpha+sample_weight-implicit")
QUICK_METHODS = ("grid", "lrcv", "ho-alpha-implicit")

# HOAG's published figures (Pedregosa 2016 / the HOAG repository), as quoted in
# the issue: reported next to the measurements, never measured here.
QUOTED = (
    {"dataset": "breast_cancer", "method": "HOAG (quoted)", "seconds": 0.10,
     "loss": 0.096},
    {"dataset": "synthetic", "method": "HOAG (quoted)", "seconds": 0.38,
     "loss": 0.601},
    {"dataset": "binary_digits", "method": "HOAG (quoted)", "seconds": None,
     "loss": 0.336},
    {"dataset": "binary_digits", "method": "grid search (quoted, HOAG paper)",
     "seconds": None, "loss": 0.287},
)


# ---- methods ----------------------------------------------------------------
def known_methods():
    """Every method name, for ``--methods`` patterns (``learn`` × hypergradient).

    Learning rates need an unrolled or online hypergradient, so
    ``ho-learning_rate-implicit`` is not generated.
    """
    from skfarho._comparison import LEARN, unrolled_only

    names = list(BASELINES)
    for learn, hypergradient in itertools.product(LEARN, HYPERGRADIENTS):
        if unrolled_only((learn,)) and hypergradient == "implicit":
            continue
        names.append(f"ho-{learn}-{hypergradient}")
    return names


def parse_method(name):
    """``(kind, learn, hypergradient)`` of a method name; raise on a bad one.

    ``kind`` is the name itself for the baselines and ``"ho"`` otherwise.
    """
    from skfarho._comparison import LEARN, unrolled_only

    if name in BASELINES:
        return name, None, None
    parts = name.split("-")
    if len(parts) != 3 or parts[0] != "ho":
        raise ValueError(f"unknown method {name!r}: use {', '.join(BASELINES)} or "
                         "ho-<learn>-<hypergradient>")
    learn = tuple(parts[1].split("+"))
    unknown = sorted(set(learn) - set(LEARN))
    if unknown or not learn:
        raise ValueError(f"{name!r}: unknown learn name(s) {unknown}; choose among "
                         f"{', '.join(LEARN)}, joined by '+'")
    if parts[2] not in HYPERGRADIENTS:
        raise ValueError(f"{name!r}: hypergradient must be one of "
                         f"{', '.join(HYPERGRADIENTS)}")
    unrolled = unrolled_only(learn)
    if unrolled and parts[2] == "implicit":
        raise ValueError(f"{name!r}: {unrolled[0]} needs an unrolled hypergradient")
    return "ho", learn, parts[2]


def expand_methods(tokens):
    """Method names from ``--methods`` tokens (names, globs or ``default``)."""
    names = []
    for token in tokens:
        if token == "default":
            matched = list(DEFAULT_METHODS + NOISY_EXTRA_METHODS)
        elif token == "all":
            matched = known_methods()
        elif any(char in token for char in "*?["):
            matched = fnmatch.filter(known_methods(), token)
            if not matched:
                raise ValueError(f"--methods pattern {token!r} matches nothing")
        else:
            parse_method(token)
            matched = [token]
        names += [name for name in matched if name not in names]
    return names


def methods_for(dataset, methods, explicit):
    """The methods run on ``dataset``: ``grid-clean`` only on noisy data; the
    default set adds hyper-cleaning methods on the noisy data set."""
    if not explicit:
        methods = list(DEFAULT_METHODS)
        if dataset in NOISY:
            methods += list(NOISY_EXTRA_METHODS)
    return [m for m in methods if m != "grid-clean" or dataset in NOISY]


def describe(method, task):
    """A human-readable description of a method."""
    from skfarho._comparison import GRID, GRID_CV

    kind, learn, hypergradient = parse_method(method)
    grid = f"{len(GRID)} values x {GRID_CV}-fold, n_jobs=-1"
    if task == "regression":
        return {"grid": f"GridSearchCV(Ridge), {grid}",
                "lrcv": f"RidgeCV(alphas={len(GRID)} values, efficient LOO)"}.get(
            method, f"HORidge(learn={'+'.join(learn or ())}, {hypergradient})")
    return {"grid": f"GridSearchCV(LogisticRegression), {grid}",
            "lrcv": f"LogisticRegressionCV(Cs={len(GRID)}, cv={GRID_CV}, "
            "n_jobs=-1)",
            "grid-clean": "GridSearchCV(LogisticRegression) on the clean labels"}.get(
        method, f"HOLogisticRegression(learn={'+'.join(learn or ())}, "
        f"{hypergradient})")


# ---- data -------------------------------------------------------------------
def load_split(name, flip_fraction=0.4):
    """One data set's fixed train/test split, as a dict.

    ``synthetic`` is ``make_classification(n_samples=2000, n_features=500,
    n_informative=20, random_state=0)``; ``binary_digits`` is digits with
    ``y = digit >= 5``. ``digits_noisy`` is the data hyper-cleaning protocol of
    Franceschi et al. (2017): the training split is cut into noisy training rows,
    ``flip_fraction`` of whose labels are replaced by another class drawn
    uniformly, and a small *clean* validation set (``CLEAN_VALIDATION``, a
    fraction of the training split); test labels stay clean. The clean rows come
    last, ``validation_fold`` marks them (a ``PredefinedSplit``, given to every
    method: the searches score on them, skfarho learns its weights on them);
    ``y_train_clean`` keeps the original labels and ``flipped`` marks the
    flipped rows.
    """
    import numpy as np
    from sklearn.model_selection import train_test_split

    from skfarho._comparison import load_dataset, train_test

    dataset = load_dataset("digits" if name in NOISY else name, SEED)
    X_train, X_test, y_train, y_test = train_test(dataset, SEED)
    data = {"name": name, "task": dataset.task, "X_train": X_train,
            "X_test": X_test, "y_train": y_train, "y_test": y_test,
            "y_train_clean": y_train, "flipped": None}
    if name in NOISY:
        X_noisy, X_clean, y_noisy, y_clean = train_test_split(
            X_train, y_train, test_size=CLEAN_VALIDATION, random_state=SEED,
            stratify=y_train)
        rng = np.random.default_rng(SEED)
        classes = np.unique(y_train)
        flipped = np.zeros(len(y_noisy), dtype=bool)
        flipped[rng.choice(len(y_noisy), round(flip_fraction * len(y_noisy)),
                           replace=False)] = True
        # another class, uniformly: shift by 1..K-1 modulo K
        shift = rng.integers(1, len(classes), size=len(y_noisy))
        noisy = np.where(flipped, (y_noisy + shift) % len(classes), y_noisy)
        data.update(
            X_train=np.vstack([X_noisy, X_clean]),
            y_train=np.concatenate([noisy, y_clean]),
            y_train_clean=np.concatenate([y_noisy, y_clean]),
            flipped=np.concatenate([flipped, np.zeros(len(y_clean), bool)]),
            validation_fold=np.concatenate([np.full(len(y_noisy), -1),
                                            np.zeros(len(y_clean), int)]))
    return data


# ---- inside a child process -------------------------------------------------
def import_for(kind):
    """Import what a method needs (timed by the cold child).

    Every kind imports :mod:`skfarho._comparison`, and so skfarho and JAX.
    """
    import numpy  # noqa: F401
    import sklearn.linear_model  # noqa: F401
    import sklearn.metrics  # noqa: F401
    import sklearn.model_selection  # noqa: F401
    import sklearn.pipeline  # noqa: F401
    import sklearn.preprocessing  # noqa: F401

    import skfarho._comparison  # noqa: F401

    if kind == "ho":
        import jax  # noqa: F401


def _new_kwargs(cls, **wanted):
    """Keep the kwargs ``cls`` accepts (newer scikit-learn options)."""
    import inspect

    accepted = inspect.signature(cls).parameters
    return {key: value for key, value in wanted.items() if key in accepted}


def build(method, task, extra_params, max_iter, validation_fold=None):
    """The pipeline of ``method`` (unfitted).

    With ``validation_fold`` (hyper-cleaning), every method but ``grid-clean``
    validates on the rows it marks (``PredefinedSplit``).
    """
    from sklearn.linear_model import LogisticRegressionCV, RidgeCV
    from sklearn.model_selection import PredefinedSplit

    from skfarho._comparison import (
        GRID,
        GRID_CV,
        grid_search,
        ho_estimator,
        in_pipeline,
    )

    kind, learn, hypergradient = parse_method(method)
    cv = GRID_CV
    if validation_fold is not None and kind != "grid-clean":
        cv = PredefinedSplit(validation_fold)
    if kind == "ho":
        params = {"learn": learn, "hypergradient": hypergradient,
                  "random_state": SEED, **extra_params}
        if validation_fold is not None:
            params["cv"] = cv
        model = ho_estimator(task, **params)
    elif kind in ("grid", "grid-clean"):
        model = grid_search(task, cv, max_iter)
    elif task == "regression":
        model = RidgeCV(alphas=GRID)
    else:
        model = LogisticRegressionCV(
            Cs=len(GRID), cv=cv, n_jobs=-1, scoring="neg_log_loss",
            max_iter=max_iter, **_new_kwargs(LogisticRegressionCV, l1_ratios=(0.0,),
                                             use_legacy_attributes=False))
    return in_pipeline(model)


def evaluate(model, data, method):
    """Test metrics, selected hyperparameters and (cleaning) the weights' AUC."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from skfarho._comparison import evaluate as test_metrics

    out = {}
    out["loss"], out["score"] = test_metrics(model, data["X_test"], data["y_test"],
                                             data["task"])
    last = model[-1]
    kind = parse_method(method)[0]
    if kind == "ho":
        alpha = np.asarray(last.alpha_)
        out["selected"] = {"alpha_geomean": float(np.exp(np.mean(np.log(alpha)))),
                           "alpha_min": float(alpha.min()),
                           "alpha_max": float(alpha.max()),
                           "learning_rate": float(last.learning_rate_),
                           "n_iter": int(last.n_iter_),
                           "final_validation_loss": float(
                               last.objective_curve_[-1])
                           if len(last.objective_curve_) else None}
        weights = np.asarray(last.sample_weight_)
        if data["flipped"] is not None and np.ptp(weights[np.isfinite(weights)]) > 0:
            used = np.isfinite(weights)
            clean = ~data["flipped"][used]
            out["auc"] = float(roc_auc_score(clean, weights[used]))
            out["selected"]["mean_weight_clean"] = float(weights[used][clean].mean())
            out["selected"]["mean_weight_flipped"] = float(
                weights[used][~clean].mean())
    elif hasattr(last, "best_params_"):
        out["selected"] = {key: float(value)
                           for key, value in last.best_params_.items()}
    elif hasattr(last, "C_"):
        out["selected"] = {"C": float(np.mean(last.C_))}
    elif hasattr(last, "alpha_"):
        out["selected"] = {"alpha": float(last.alpha_)}
    return out


def child(spec):
    """Run one warm or cold measurement in this (fresh) process; print JSON."""
    start = time.perf_counter()
    method, mode = spec["method"], spec["mode"]
    kind = parse_method(method)[0]
    import_for(kind)
    from skfarho._comparison import fit_timed

    result = {"dataset": spec["dataset"], "method": method, "mode": mode,
              "import_s": time.perf_counter() - start}
    data = load_split(spec["dataset"], spec["flip_fraction"])
    y_fit = data["y_train_clean"] if method == "grid-clean" else data["y_train"]

    def fresh():
        return build(method, data["task"], spec["extra_params"], spec["max_iter"],
                     data.get("validation_fold"))

    def timed(model):
        return fit_timed(model, data["X_train"], y_fit, max_chars=200)

    try:
        model = fresh()
        if mode == "cold":
            result["seconds"], result["warnings"] = timed(model)
        else:
            result["first_fit_s"], result["warnings"] = timed(model)
            result["runs"] = []
            for _ in range(spec["repeats"]):
                model = fresh()
                result["runs"].append(timed(model)[0])
            result["seconds"] = statistics.median(result["runs"])
        result.update(evaluate(model, data, method))
    except Exception as error:  # report, let the parent go on
        result["error"] = f"{type(error).__name__}: {str(error)[:500]}"
    report_child_result(result)


# ---- in the parent process --------------------------------------------------


def run_child(spec, timeout, threads=None):
    """Run :func:`child` in a fresh interpreter; return its JSON (or an error).

    The child inherits this process's environment, except that JAX's persistent
    compilation cache is disabled (so "cold" means compiled from scratch). By
    default no thread-count variable is set: GridSearchCV and
    LogisticRegressionCV with ``n_jobs=-1`` run in loky workers, which cap BLAS
    and OpenMP at one thread per worker by themselves, and JAX's CPU backend
    uses its own thread pool. ``threads`` (``--threads``) sets
    ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` and ``MKL_NUM_THREADS`` in
    every child alike, for shared or loaded machines, where multithreaded BLAS
    and OpenMP in the parent process (the final refit of the searches,
    skfarho's spectral-norm SVD) can be many times slower than one thread.
    """
    return run_fresh(Path(__file__).resolve(), spec, timeout, threads)


def summarize(values):
    """Median, min, max and all of a list of numbers (None when empty)."""
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values),
            "max": max(values), "all": values}


def _fmt(value, spec):
    return "—" if value is None else format(value, spec)


def markdown(rows, datasets):
    """The results table (and the hyper-cleaning accuracy gaps) in markdown."""
    from skfarho._comparison import REGRESSION, render_table

    header = ["dataset", "method", "warm time (s)", "cold time (s)",
              "test log-loss (MSE for regression)", "accuracy (R²)",
              "ratio to GridSearchCV time (warm / cold)", "AUC (cleaning)"]
    cells = []
    for name in datasets:
        mine = [row for row in rows if row["dataset"] == name]
        grid = next((row for row in mine if row["method"] == "grid"), None)
        regression = name in REGRESSION
        for row in mine:
            warm, cold = row.get("warm_s"), row.get("cold_s")
            if row.get("error"):
                cells.append([name, row["method"], f"error: {row['error'][:80]}",
                              "", "", "", "", ""])
                continue
            ratio = "—"
            if grid and grid.get("warm_s") and warm is not None:
                ratio = f"{warm['median'] / grid['warm_s']['median']:.2f}"
                if cold and grid.get("cold_s"):
                    ratio += f" / {cold['median'] / grid['cold_s']['median']:.2f}"
            cells.append([name, row["method"], _fmt(warm and warm["median"], ".3f"),
                          _fmt(cold and cold["median"], ".2f"),
                          _fmt(row.get("loss"), ".1f" if regression else ".4f"),
                          _fmt(row.get("score"), ".4f"), ratio,
                          _fmt(row.get("auc"), ".3f")])
        for quoted in QUOTED:
            if quoted["dataset"] == name:
                cells.append([name, f"*{quoted['method']}*",
                              f"*{_fmt(quoted['seconds'], '.2f')}*", "—",
                              f"*{quoted['loss']:.3f}*", "—", "—", "—"])
    lines = [render_table(header, cells, numeric=range(2, 8), markdown=True)]
    lines.append("")
    lines.append("Times are medians (warm: same process after an untimed fit; "
                 "cold: fresh process, imports excluded). Rows in italics marked "
                 "*quoted* are HOAG's published figures, not measured here "
                 "(other hardware and setup).")
    cleaning = [row for row in rows if row["dataset"] in NOISY]
    reference = next((row for row in cleaning if row["method"] == "grid-clean"
                      and row.get("score") is not None), None)
    if reference:
        gaps = [[row["dataset"], row["method"], f"{row['score']:.4f}",
                 f"{row['score'] - reference['score']:+.4f}"]
                for row in cleaning
                if row.get("score") is not None and row is not reference]
        lines += ["", "Hyper-cleaning: test accuracy gap to GridSearchCV on the "
                  "clean labels (accuracy "
                  f"{reference['score']:.4f}):", "",
                  render_table(["dataset", "method", "accuracy", "gap"], gaps,
                               numeric={2, 3}, markdown=True)]
    return "\n".join(lines)


def save_plot(rows, datasets, path):
    """Test loss against wall time, one panel per data set (log time axis)."""
    from matplotlib import ticker

    from skfarho._comparison import (
        REGRESSION,
        label_panel,
        new_figure,
        save_figure,
    )

    datasets = [name for name in datasets
                if any(r["dataset"] == name and r.get("loss") is not None
                       for r in rows)]
    if not datasets:
        return
    methods = sorted({row["method"] for row in rows})
    colors = {method: f"C{index % 10}" for index, method in enumerate(methods)}
    fig, axes = new_figure(len(datasets), columns=3, panel_size=(5.2, 4))
    for ax, name in zip(axes, datasets, strict=True):
        for row in rows:
            if row["dataset"] != name or row.get("loss") is None:
                continue
            color, points = colors[row["method"]], []
            if row.get("warm_s"):
                points.append(row["warm_s"]["median"])
                ax.scatter(points[-1], row["loss"], color=color, s=50, zorder=3,
                           label=row["method"])
            if row.get("cold_s"):
                points.append(row["cold_s"]["median"])
                ax.scatter(points[-1], row["loss"], facecolors="none", s=50,
                           edgecolors=color, zorder=3,
                           label=None if len(points) > 1 else row["method"])
            if len(points) == 2:
                ax.plot(points, [row["loss"]] * 2, color=color, lw=0.8, alpha=0.6)
        styles = iter((":", "--", "-."))
        for quoted in QUOTED:
            if quoted["dataset"] == name and quoted["seconds"] is not None:
                ax.scatter(quoted["seconds"], quoted["loss"], marker="*", s=120,
                           color="black", zorder=4, label=quoted["method"])
            elif quoted["dataset"] == name:
                ax.axhline(quoted["loss"], color="gray", ls=next(styles), lw=1,
                           label=f"{quoted['method']}: {quoted['loss']}")
        ax.set_xscale("log")
        low, high = ax.get_xlim()
        if high / low < 10:  # less than a decade: label the minor ticks
            ax.xaxis.set_minor_locator(ticker.LogLocator(subs=(2.0, 5.0)))
            ax.xaxis.set_minor_formatter(ticker.FormatStrFormatter("%.3g"))
        else:
            ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        task = "regression" if name in REGRESSION else "classification"
        label_panel(ax, name, task, "fit wall time (s): filled warm, hollow cold",
                    "x-small")
    save_figure(fig, path, dpi=110)


def parse_args(argv=None):
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="methods: " + ", ".join(known_methods()) + " (globs allowed, e.g. "
        "'ho-alpha-*'; 'default', 'all'; learn names may be joined by '+')")
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=None,
                        help="data sets (default: all; quick: "
                        f"{' '.join(QUICK_DATASETS)})")
    parser.add_argument("--methods", nargs="+", default=None,
                        help="method names or globs (default: "
                        f"{' '.join(DEFAULT_METHODS)}, plus "
                        f"{' '.join(NOISY_EXTRA_METHODS)} on digits_noisy; quick: "
                        f"{' '.join(QUICK_METHODS)})")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed warm fits and cold processes (default 3; "
                        "quick 1)")
    parser.add_argument("--no-cold", action="store_true",
                        help="skip the cold (fresh-process) timings")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1 repeat, 2 small data sets, 3 methods")
    parser.add_argument("--extra-params", type=json.loads, default={},
                        metavar="JSON",
                        help="estimator kwargs for every skfarho method, e.g. "
                        "'{\"cv\": 5, \"hyper_penalty\": 0.1}'")
    parser.add_argument("--max-iter", type=int, default=1000,
                        help="max_iter of LogisticRegression(CV) (default "
                        "%(default)s; scikit-learn's 100 warns at large C)")
    parser.add_argument("--flip-fraction", type=float, default=0.4,
                        help="fraction of flipped training labels in digits_noisy "
                        "(default %(default)s)")
    parser.add_argument("--threads", type=int, default=None,
                        help="set OMP/OPENBLAS/MKL_NUM_THREADS in every child "
                        "(default: inherit; useful on a loaded machine)")
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="seconds allowed per child process")
    parser.add_argument("--output", type=Path, default=None,
                        help="JSON path (default benchmarks/results/vs_search.json; "
                        "vs_search_quick.json with --quick)")
    parser.add_argument("--plot", type=Path, default=None, metavar="PATH",
                        help="PNG path (default benchmarks/results/vs_search.png; "
                        "vs_search_quick.png with --quick)")
    parser.add_argument("--no-plot", action="store_true", help="no plot")
    args = parser.parse_args(argv)
    if not isinstance(args.extra_params, dict):
        parser.error("--extra-params must be a JSON object")
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if args.datasets is None:
        args.datasets = list(QUICK_DATASETS if args.quick else DATASETS)
    args.explicit_methods = args.quick or args.methods not in (None, ["default"])
    try:
        args.methods = expand_methods(
            args.methods or (QUICK_METHODS if args.quick else DEFAULT_METHODS))
    except ValueError as error:
        parser.error(str(error))
    suffix = "_quick" if args.quick else ""
    if args.output is None:
        args.output = RESULTS / f"vs_search{suffix}.json"
    if args.plot is None:
        args.plot = RESULTS / f"vs_search{suffix}.png"
    return args


def main(argv=None):
    """Run the children, print the table, write the JSON and the plot."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--child"]:  # before any import the child should time
        child(json.loads(argv[1]))
        return None
    from skfarho._comparison import GRID, GRID_CV, REGRESSION, TEST_SIZE

    args = parse_args(argv)
    plan = [(name, method) for name in args.datasets
            for method in methods_for(name, args.methods, args.explicit_methods)]
    common = {"repeats": args.repeats, "extra_params": args.extra_params,
              "max_iter": args.max_iter, "flip_fraction": args.flip_fraction}
    warm, cold = {}, {key: [] for key in plan}
    for index, (name, method) in enumerate(plan, start=1):
        result = run_child({"dataset": name, "method": method, "mode": "warm",
                            **common}, args.timeout, args.threads)
        warm[name, method] = result
        status = result.get("error") or (
            f"{result['seconds']:.3f}s (first fit {result['first_fit_s']:.2f}s), "
            f"loss {result['loss']:.4f}")
        print(f"[{index}/{len(plan)}] warm {name} {method}: {status}", flush=True)
    if not args.no_cold:
        for repeat in range(args.repeats):  # interleaved, so drift hits all alike
            for name, method in plan:
                if warm[name, method].get("error"):
                    continue
                result = run_child({"dataset": name, "method": method,
                                    "mode": "cold", **common}, args.timeout,
                                   args.threads)
                cold[name, method].append(result)
                status = result.get("error") or (
                    f"{result['seconds']:.2f}s (+ import {result['import_s']:.2f}s)")
                print(f"  cold {repeat + 1}/{args.repeats} {name} {method}: "
                      f"{status}", flush=True)
    rows = []
    for name, method in plan:
        w = warm[name, method]
        runs = [c for c in cold[name, method] if not c.get("error")]
        data_task = "regression" if name in REGRESSION else "classification"
        row = {"dataset": name, "method": method,
               "description": describe(method, data_task),
               "warm_s": summarize(w.get("runs", [])),
               "first_fit_s": w.get("first_fit_s"),
               "cold_s": summarize([c["seconds"] for c in runs]),
               "cold_import_s": summarize([c["import_s"] for c in runs]),
               "warm_import_s": w.get("import_s"),
               "loss": w.get("loss"), "score": w.get("score"), "auc": w.get("auc"),
               "selected": w.get("selected"), "warnings": w.get("warnings", []),
               "error": w.get("error"),
               "cold_errors": [c["error"] for c in cold[name, method]
                               if c.get("error")]}
        losses = {round(c["loss"], 6) for c in runs if "loss" in c}
        if row["loss"] is not None and len(losses | {round(row["loss"], 6)}) > 1:
            row["warnings"].append(f"cold runs gave other test losses: {losses}")
        rows.append(row)
    table = markdown(rows, args.datasets)
    print()
    print(table)
    report = {
        "benchmark": "vs_search",
        "config": {"quick": args.quick, "datasets": args.datasets,
                   "methods": args.methods, "repeats": args.repeats,
                   "cold": not args.no_cold, "extra_params": args.extra_params,
                   "threads": args.threads,
                   "max_iter": args.max_iter, "flip_fraction": args.flip_fraction,
                   "test_size": TEST_SIZE, "seed": SEED,
                   "grid": f"np.logspace(-4, 4, {len(GRID)})", "grid_cv": GRID_CV},
        "machine": machine_info(),
        "notes": {
            "warm_s": "fit wall time of fresh estimators in a process that "
            "already fitted the same configuration once (first_fit_s)",
            "cold_s": "fit wall time in a fresh process (imports excluded, "
            "reported in cold_import_s); JAX persistent cache disabled",
            "loss": "test log-loss (classification) or MSE (regression)",
            "score": "test accuracy (classification) or R² (regression)",
            "auc": "ROC AUC of sample_weight_ (training rows used for training) "
            "at ranking clean rows above flipped ones",
            "grid_scoring": "GridSearchCV and LogisticRegressionCV select by "
            "neg_log_loss (neg_mean_squared_error for Ridge), the loss skfarho "
            "minimizes on its validation data",
            "threads": "config.threads: OMP/OPENBLAS/MKL_NUM_THREADS set in "
            "every child (null: inherited); n_jobs=-1 loky workers use one "
            "BLAS thread each regardless",
            "quoted": "HOAG's published figures, not measured here",
        },
        "results": rows,
        "quoted": list(QUOTED),
        "markdown": table,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {args.output}")
    if not args.no_plot:
        save_plot(rows, args.datasets, args.plot)
        print(f"wrote {args.plot}")
    return report


if __name__ == "__main__":
    main()
