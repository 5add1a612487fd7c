"""Benchmark FAR-HO's claim that the online methods speed up HO.

For each data set, ``HOLogisticRegression(learn=("alpha",), hypergradient=m)``
with ``m`` in batch ``reverse``, ``forward``, ``implicit`` and online ``rtho``,
``trho`` learns one L2 strength on a fixed validation split. We measure the wall
time each needs to reach the same *target validation loss*, and the test loss at
that point.

Setup (the same for every method): a stratified 75/25 train/test split, then a
stratified 75/25 split of the training part into inner-training and validation
rows, passed to ``fit(X_tr, y_tr, X_val=X_val, y_val=y_val)``; features
standardized with the inner-training statistics. One scalar ``alpha`` is
learned (forward and RTHO cost grows with the number of hyperparameters, so a
scalar keeps them competitive); ``--learn alpha learning_rate`` also learns the
inner learning rate with the unrolled and online methods.

Start: ``alpha = 1`` (the estimator's default) on synthetic, where the best
alpha is about 150; ``alpha = 100`` on digits, where 1 is already within 1% of
the best validation loss (so every method would "reach" the target at step 1);
``--alpha0`` sets one value for all.

Budgets: ``--outer-steps`` (default 50) outer steps for the batch methods, each a
full inner run (``inner_steps=200`` gradient steps for reverse/forward, L-BFGS
to a tightening tolerance for implicit); the online methods advance
``hyper_interval=10`` inner steps per outer step, so they get
``--online-outer-steps`` (default ``outer_steps * inner_steps /
hyper_interval``: as many inner steps as reverse/forward). Early stopping is
disabled (``n_iter_no_change`` = the budget) so that every curve is complete.

Timing: each outer step's end is time-stamped through the estimator's progress
hook (a subclass overrides ``_progress``, the callback ``verbose`` uses), from
the start of the outer loop, after an untimed warm-up fit of the same
configuration (compilation excluded). ``--repeats`` timed fits; medians. If the
hook ever stops firing, the time of step ``k`` falls back to ``(k + 1) / n_iter_
* fit time`` (marked ``"timing": "proportional"``).

Yardstick and target: the methods' own validation losses are not comparable
(reverse/forward report the loss after 200 inner steps, the online methods that
of a model trained while ``alpha`` moved, implicit that of an inexact
minimizer). So each step's ``alpha_k`` is scored by the validation log-loss of
the *exact* minimizer at ``alpha_k`` (scikit-learn's ``LogisticRegression(C=1
/ alpha_k)``, tol 1e-8, the same objective, run with one BLAS/OpenMP thread),
linearly interpolated on a grid of ``log alpha`` covering the visited values
(spacing ``--grid-step``, default 0.05; quick 0.2), plus a coarse grid over
``[1e-4, 1e4]`` for the best alpha overall. The target is the best yardstick
value reached by ``implicit`` (or by any method without it) times ``1 +
--target-margin`` (default 1%). A method reaches it at the first step ``k``
whose ``alpha_k`` scores at or below the target; "time to target" is the time
stamp of that step (the step that evaluated ``alpha_k``). The same target on
each method's own reported curve is given too.

Test loss "at target": a model refitted on the inner-training rows at
``alpha_k`` by the method's own final fit (``learn=()``: L-BFGS for implicit,
``inner_steps`` gradient steps otherwise), and the exact minimizer's. Test loss
"at end": the estimator fitted with the whole budget.

Usage::

    python benchmarks/bench_online.py            # digits and synthetic
    python benchmarks/bench_online.py --quick    # digits, small budgets, ~2 min
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
from machine import machine_info

RESULTS = Path(__file__).resolve().parent / "results"
METHODS = ("reverse", "forward", "implicit", "rtho", "trho")
ONLINE = ("rtho", "trho")
DATASETS = ("digits", "synthetic")
SEED = 0
# the starting alpha: the estimator's default 1.0, except on digits where 1.0 is
# already within 1% of the best validation loss (step 0 would meet the target)
DEFAULT_ALPHA0 = {"digits": 100.0, "synthetic": 1.0}


# ---- data -------------------------------------------------------------------
def load(name):
    """Standardized inner-training, validation and test parts of a data set.

    ``synthetic`` is ``make_classification(n_samples=2000, n_features=500,
    n_informative=20, random_state=0)``; ``digits`` is the 10-class digits.
    """
    from sklearn.datasets import load_digits, make_classification
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    if name == "synthetic":
        X, y = make_classification(n_samples=2000, n_features=500, n_informative=20,
                                   random_state=SEED)
    elif name == "digits":
        X, y = load_digits(return_X_y=True)
    else:
        raise ValueError(f"unknown data set {name!r}")
    X = np.asarray(X, dtype=np.float64)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=SEED)
    X_tr, X_val, y_tr, y_val = train_test_split(
        X_train, y_train, test_size=0.25, stratify=y_train, random_state=SEED)
    scaler = StandardScaler().fit(X_tr)
    return {"name": name, "X_tr": scaler.transform(X_tr), "y_tr": y_tr,
            "X_val": scaler.transform(X_val), "y_val": y_val,
            "X_test": scaler.transform(X_test), "y_test": y_test}


# ---- the timed estimator ----------------------------------------------------
def timed_estimator_class():
    """``HOLogisticRegression`` whose progress hook time-stamps every outer step.

    ``timeline_`` gets, per outer step, the seconds since the outer loop started
    (after the step's validation loss is on the host), the step's validation
    loss, its ``log_alpha`` and its ``lr_logit`` (None when not learned).
    """
    from skfarho import HOLogisticRegression

    class TimedHOLogisticRegression(HOLogisticRegression):
        def _progress(self):
            self.timeline_ = []
            start = time.perf_counter()

            def record(step, hparams, result):
                value = float(result.value)
                lr_logit = hparams.get("lr_logit")
                self.timeline_.append((
                    time.perf_counter() - start, value,
                    float(np.mean(hparams["log_alpha"])),
                    None if lr_logit is None else float(lr_logit)))

            return record

    return TimedHOLogisticRegression


def make_estimator(method, args, outer_steps, alpha0):
    """The estimator for ``method`` with the benchmark's budget."""
    learn = ("alpha",)
    if "learning_rate" in args.learn and method != "implicit":
        learn = ("alpha", "learning_rate")
    cls = timed_estimator_class()
    return cls(learn=learn, alpha=alpha0, hypergradient=method,
               outer_steps=outer_steps,
               n_iter_no_change=outer_steps, hyper_interval=args.hyper_interval,
               inner_steps=args.inner_steps, random_state=SEED)


def budget(method, args):
    """Outer steps of a method."""
    return args.online_outer_steps if method in ONLINE else args.outer_steps


def fit(estimator, data):
    """Fit on the inner-training rows with the fixed validation rows; seconds."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "used all outer_steps": expected here
        start = time.perf_counter()
        estimator.fit(data["X_tr"], data["y_tr"], X_val=data["X_val"],
                      y_val=data["y_val"])
        return time.perf_counter() - start


def run_method(method, data, args):
    """Warm up, then ``--repeats`` timed fits; the curves and timings."""
    alpha0 = data["alpha0"]
    warm = make_estimator(method, args, min(2, budget(method, args)), alpha0)
    warmup_s = fit(warm, data)
    runs = []
    for _ in range(args.repeats):
        estimator = make_estimator(method, args, budget(method, args), alpha0)
        seconds = fit(estimator, data)
        timeline = getattr(estimator, "timeline_", [])
        curve = np.asarray(estimator.objective_curve_, dtype=float)
        if len(timeline) == len(curve) and len(curve):
            times = np.array([entry[0] for entry in timeline])
            log_alpha = np.array([entry[2] for entry in timeline])
            lr_logit = [entry[3] for entry in timeline]
            timing = "progress hook"
        else:  # the hook did not fire: spread the fit time evenly
            times = seconds * np.arange(1, len(curve) + 1) / max(len(curve), 1)
            log_alpha = lr_logit = None
            timing = "proportional"
        runs.append({"fit_s": seconds, "times": times, "curve": curve,
                     "log_alpha": log_alpha, "lr_logit": lr_logit,
                     "timing": timing,
                     "estimator": estimator})
    return warmup_s, runs


# ---- the exact yardstick ----------------------------------------------------
def exact_losses(data, log_alphas):
    """Validation and test log-loss of the exact minimizer at each ``log_alpha``.

    scikit-learn's ``LogisticRegression(C=1/alpha)`` minimizes the same objective
    as skfarho (mean log-loss + ``alpha / (2n) ||coef||^2``, free intercept);
    warm started along decreasing ``alpha``. Runs with one BLAS / OpenMP thread
    (``threadpoolctl``): multithreaded, scikit-learn's multinomial loss was 60x
    slower on a loaded 2-core machine. Untimed.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    order = np.argsort(log_alphas)[::-1]
    val, test = np.empty(len(log_alphas)), np.empty(len(log_alphas))
    model = LogisticRegression(tol=1e-8, max_iter=5000, warm_start=True)
    from threadpoolctl import threadpool_limits

    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        for index in order:
            model.set_params(C=float(np.exp(-log_alphas[index])))
            model.fit(data["X_tr"], data["y_tr"])
            val[index] = log_loss(data["y_val"], model.predict_proba(data["X_val"]),
                                  labels=model.classes_)
            test[index] = log_loss(data["y_test"],
                                   model.predict_proba(data["X_test"]),
                                   labels=model.classes_)
    return val, test


def referee_check(data):
    """|skfarho - scikit-learn| validation log-loss at alpha = 1 (same objective)."""
    from sklearn.metrics import log_loss

    from skfarho import HOLogisticRegression

    ours = HOLogisticRegression(learn=(), alpha=1.0).fit(data["X_tr"], data["y_tr"])
    theirs = exact_losses(data, np.array([0.0]))[0][0]
    mine = log_loss(data["y_val"], ours.predict_proba(data["X_val"]),
                    labels=ours.classes_)
    return {"skfarho_val_loss": float(mine), "sklearn_val_loss": float(theirs),
            "abs_diff": float(abs(mine - theirs))}


def test_loss_at(method, log_alpha, data, args, lr_logits=None):
    """Test log-loss of the method's own final fit at ``alpha`` (no learning).

    With a learned learning rate, ``lr_logits`` is ``(initial, at that step)``
    and the fit uses that step's rate: the estimator keeps it at ``lr_max *
    sigmoid(lr_logit)`` from the automatic rate at the starting alpha (which a
    ``learn=()`` fit reports as ``learning_rate_``), so the step's rate is that
    times ``sigmoid(lr_logit) / sigmoid(initial lr_logit)``.
    """
    from sklearn.metrics import log_loss

    from skfarho import HOLogisticRegression

    learning_rate = "auto"
    if lr_logits is not None:
        auto = HOLogisticRegression(learn=(), alpha=data["alpha0"]).fit(
            data["X_tr"], data["y_tr"]).learning_rate_
        initial, step = lr_logits
        learning_rate = auto * (1.0 + np.exp(-initial)) / (1.0 + np.exp(-step))
    model = HOLogisticRegression(learn=(), alpha=float(np.exp(log_alpha)),
                                 hypergradient=method, inner_steps=args.inner_steps,
                                 hyper_interval=args.hyper_interval,
                                 learning_rate=learning_rate)
    model.fit(data["X_tr"], data["y_tr"])
    return float(log_loss(data["y_test"], model.predict_proba(data["X_test"]),
                          labels=model.classes_))


def first_at_or_below(values, target):
    """Index of the first value <= target, or None."""
    hits = np.flatnonzero(np.asarray(values) <= target)
    return int(hits[0]) if hits.size else None


# ---- one data set -----------------------------------------------------------
def bench_dataset(name, args):
    """All methods on one data set: curves, target, times and test losses."""
    from sklearn.metrics import log_loss

    data = load(name)
    data["alpha0"] = args.alpha0 or DEFAULT_ALPHA0[name]
    print(f"== {name}: {len(data['y_tr'])} inner-training, {len(data['y_val'])} "
          f"validation, {len(data['y_test'])} test rows x "
          f"{data['X_tr'].shape[1]} features, alpha0 = {data['alpha0']:g}",
          flush=True)
    raw = {}
    for method in args.methods:
        try:
            raw[method] = run_method(method, data, args)
        except Exception as error:  # a diverging method: report, go on
            raw[method] = f"{type(error).__name__}: {str(error)[:300]}"
            print(f"  {method}: error {raw[method]}", flush=True)
            continue
        warmup_s, runs = raw[method]
        print(f"  {method}: warm-up {warmup_s:.1f}s, {len(runs[0]['curve'])} outer "
              f"steps in {statistics.median(r['fit_s'] for r in runs):.2f}s "
              f"(fit, median)", flush=True)
    ok = {m: v for m, v in raw.items() if not isinstance(v, str)}
    visited = np.concatenate([r["log_alpha"] for _, runs in ok.values()
                              for r in runs[:1] if r["log_alpha"] is not None]
                             + [np.log([data["alpha0"]])])
    lo, hi = float(visited.min()) - 0.5, float(visited.max()) + 0.5
    grid = np.arange(lo, hi + args.grid_step, args.grid_step)
    broad = np.arange(np.log(1e-4), np.log(1e4) + 0.5, 0.5)
    start = time.perf_counter()
    grid_val, grid_test = exact_losses(data, grid)
    broad_val, _ = exact_losses(data, broad)
    best_grid = int(np.argmin(grid_val))
    oracle = {"val_loss": float(min(grid_val.min(), broad_val.min())),
              "log_alpha": float(grid[best_grid]
                                 if grid_val.min() <= broad_val.min()
                                 else broad[int(np.argmin(broad_val))])}
    print(f"  yardstick: {len(grid) + len(broad)} exact fits in "
          f"{time.perf_counter() - start:.1f}s", flush=True)

    def yardstick(log_alpha):
        return np.interp(log_alpha, grid, grid_val)

    curves = {m: yardstick(runs[0]["log_alpha"]) for m, (_, runs) in ok.items()
              if runs[0]["log_alpha"] is not None}
    reference = "implicit" if "implicit" in curves else None
    best = (float(curves[reference].min()) if reference
            else float(min(c.min() for c in curves.values())) if curves else np.nan)
    target = best * (1 + args.target_margin)
    rows = []
    for method in args.methods:
        if isinstance(raw.get(method), str):
            rows.append({"method": method, "error": raw[method]})
            continue
        warmup_s, runs = raw[method]
        first = runs[0]
        estimator = first["estimator"]
        steps_run = len(first["curve"])
        per_step = (args.hyper_interval if method in ONLINE
                    else None if method == "implicit" else args.inner_steps)
        row = {"method": method, "learn": list(estimator.learn),
               "timing": first["timing"], "warmup_s": warmup_s,
               "outer_steps_run": steps_run,
               "fit_s": statistics.median(r["fit_s"] for r in runs),
               "loop_s": statistics.median(float(r["times"][-1]) for r in runs),
               "ms_per_outer_step": 1e3 * statistics.median(
                   float(r["times"][-1]) / len(r["times"]) for r in runs),
               "inner_steps_per_outer_step": per_step,
               "reported_val_loss_best": float(first["curve"].min()),
               "reported_val_loss_end": float(first["curve"][-1]),
               "alpha_end": float(np.exp(np.mean(np.log(estimator.alpha_)))),
               "learning_rate_end": float(estimator.learning_rate_),
               "test_loss_end": float(log_loss(
                   data["y_test"], estimator.predict_proba(data["X_test"]),
                   labels=estimator.classes_)),
               "curves_identical_across_repeats": all(
                   np.array_equal(r["curve"], first["curve"]) for r in runs),
               "repeat_fit_s": [r["fit_s"] for r in runs]}
        if method in curves:
            curve = curves[method]
            row["yardstick_val_loss_best"] = float(curve.min())
            row["yardstick_val_loss_end"] = float(curve[-1])
            k = first_at_or_below(curve, target)
            row["steps_to_target"] = None if k is None else k + 1
            if k is not None:
                row["time_to_target_s"] = statistics.median(
                    float(r["times"][k]) for r in runs)
                row["inner_steps_to_target"] = (None if per_step is None
                                                else (k + 1) * per_step)
                log_alpha = float(first["log_alpha"][k])
                row["alpha_at_target"] = float(np.exp(log_alpha))
                lr_logits = None
                if first["lr_logit"][0] is not None:
                    lr_logits = (first["lr_logit"][0], first["lr_logit"][k])
                row["test_loss_at_target"] = test_loss_at(method, log_alpha, data,
                                                          args, lr_logits)
                row["exact_test_loss_at_target"] = float(
                    np.interp(log_alpha, grid, grid_test))
            row["yardstick_curve"] = curve.tolist()
            row["log_alpha_curve"] = first["log_alpha"].tolist()
        k = first_at_or_below(first["curve"], target)
        row["reported_steps_to_target"] = None if k is None else k + 1
        row["reported_time_to_target_s"] = (None if k is None else statistics.median(
            float(r["times"][k]) for r in runs))
        row["reported_curve"] = first["curve"].tolist()
        row["times"] = first["times"].tolist()
        rows.append(row)
    reverse = next((r for r in rows if r["method"] == "reverse"
                    and r.get("time_to_target_s")), None)
    for row in rows:
        if reverse and row.get("time_to_target_s"):
            row["speedup_vs_reverse"] = (reverse["time_to_target_s"]
                                         / row["time_to_target_s"])
    return {"dataset": name, "n_inner_train": len(data["y_tr"]),
            "n_val": len(data["y_val"]), "n_test": len(data["y_test"]),
            "n_features": data["X_tr"].shape[1],
            "n_classes": len(np.unique(data["y_tr"])),
            "alpha0": data["alpha0"],
            "start_val_loss": float(yardstick(np.log(data["alpha0"]))),
            "target": {"val_loss": target, "best": best,
                       "reference": reference or "best of all methods",
                       "margin": args.target_margin},
            "oracle": oracle, "referee_check": referee_check(data),
            "yardstick_grid": {"log_alpha": grid.tolist(),
                               "val_loss": grid_val.tolist()},
            "methods": rows}


# ---- report -----------------------------------------------------------------
def _fmt(value, spec):
    return "—" if value is None else format(value, spec)


def markdown(results):
    """One table per data set."""
    lines = []
    for res in results:
        target = res["target"]
        lines += [
            f"### {res['dataset']} ({res['n_inner_train']} train / {res['n_val']} "
            f"validation / {res['n_test']} test rows, {res['n_features']} "
            f"features, {res['n_classes']} classes)", "",
            f"Target validation log-loss {target['val_loss']:.5f} = best of "
            f"{target['reference']} ({target['best']:.5f}) x "
            f"(1 + {target['margin']:g}); start: alpha = {res['alpha0']:g}, "
            f"{res['start_val_loss']:.5f}; best over alpha (exact minimizer): "
            f"{res['oracle']['val_loss']:.5f} at alpha = "
            f"{np.exp(res['oracle']['log_alpha']):.3g}. skfarho vs scikit-learn "
            f"at alpha=1: |diff| = {res['referee_check']['abs_diff']:.1e}.", "",
            "| method | outer steps to target | time to target (s) | inner steps "
            "to target | speed-up vs reverse | test log-loss at target (own fit "
            "/ exact) | steps run | ms / outer step | best val loss (exact / "
            "reported) | test log-loss at end |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in res["methods"]:
            if row.get("error"):
                lines.append(f"| {row['method']} | error: {row['error'][:80]} "
                             "| | | | | | | | |")
                continue
            reached = row.get("steps_to_target") is not None
            inner = row.get("inner_steps_to_target")
            lines.append(
                f"| {row['method']} | "
                f"{row['steps_to_target'] if reached else 'not reached'} | "
                f"{_fmt(row.get('time_to_target_s'), '.3f')} | "
                f"{inner if inner is not None else ('L-BFGS' if reached else '—')}"
                f" | {_fmt(row.get('speedup_vs_reverse'), '.2f')} | "
                f"{_fmt(row.get('test_loss_at_target'), '.4f')} / "
                f"{_fmt(row.get('exact_test_loss_at_target'), '.4f')} | "
                f"{row['outer_steps_run']} | {row['ms_per_outer_step']:.1f} | "
                f"{_fmt(row.get('yardstick_val_loss_best'), '.5f')} / "
                f"{row['reported_val_loss_best']:.5f} | "
                f"{row['test_loss_end']:.4f} |")
        lines.append("")
    lines.append(
        "Time to target: from the start of the outer loop (compilation excluded "
        "by a warm-up fit) to the end of the first outer step whose alpha's exact "
        "minimizer reaches the target validation loss; medians over repeats. "
        "Inner steps for implicit: L-BFGS iterations are not exposed.")
    return "\n".join(lines)


def parse_args(argv=None):
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=None,
                        help="data sets (default: digits synthetic; quick: digits)")
    parser.add_argument("--methods", nargs="+", choices=METHODS,
                        default=list(METHODS), help="hypergradient methods")
    parser.add_argument("--learn", nargs="+", choices=("alpha", "learning_rate"),
                        default=["alpha"],
                        help="learned hyperparameters (learning_rate: unrolled and "
                        "online methods only; default: alpha)")
    parser.add_argument("--outer-steps", type=int, default=None,
                        help="outer steps of the batch methods (default 50; quick "
                        "10)")
    parser.add_argument("--online-outer-steps", type=int, default=None,
                        help="outer steps of RTHO/TRHO (default: outer_steps * "
                        "inner_steps / hyper_interval)")
    parser.add_argument("--inner-steps", type=int, default=200,
                        help="inner steps of reverse/forward and of the final fit "
                        "of the unrolled and online methods (default %(default)s)")
    parser.add_argument("--hyper-interval", type=int, default=10,
                        help="inner steps per outer step of RTHO/TRHO (default "
                        "%(default)s)")
    parser.add_argument("--target-margin", type=float, default=0.01,
                        help="target = best implicit validation loss x (1 + margin)"
                        " (default %(default)s)")
    parser.add_argument("--alpha0", type=float, default=None,
                        help="starting alpha for every data set (default: 100 on "
                        "digits, 1 on synthetic)")
    parser.add_argument("--grid-step", type=float, default=None,
                        help="log-alpha spacing of the yardstick grid (default "
                        "0.05; quick 0.2)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed fits per method (default 3; quick 1)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: digits, 10 batch outer steps, 1 repeat")
    parser.add_argument("--output", type=Path, default=None,
                        help="JSON path (default benchmarks/results/online.json; "
                        "online_quick.json with --quick)")
    args = parser.parse_args(argv)
    args.datasets = args.datasets or (["digits"] if args.quick else list(DATASETS))
    args.outer_steps = args.outer_steps or (10 if args.quick else 50)
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.grid_step = args.grid_step or (0.2 if args.quick else 0.05)
    if args.online_outer_steps is None:
        args.online_outer_steps = max(
            1, args.outer_steps * args.inner_steps // args.hyper_interval)
    if args.output is None:
        args.output = RESULTS / ("online_quick.json" if args.quick else "online.json")
    return args


def main(argv=None):
    """Run every data set, print the tables and write the JSON report."""
    args = parse_args(argv)
    results = [bench_dataset(name, args) for name in args.datasets]
    table = markdown(results)
    print()
    print(table)
    report = {
        "benchmark": "online",
        "config": {key: (str(value) if isinstance(value, Path) else value)
                   for key, value in vars(args).items()},
        "machine": machine_info(),
        "notes": {
            "target": "best yardstick validation loss of implicit x (1 + margin)",
            "yardstick": "validation log-loss of the exact minimizer "
            "(LogisticRegression(C=1/alpha), tol=1e-8) at each step's alpha, "
            f"linearly interpolated on a log-alpha grid of spacing {args.grid_step}",
            "time_to_target_s": "seconds from the outer loop's start to the end "
            "of the first step whose alpha reaches the target (warm: compilation "
            "excluded); median over repeats",
            "reported_*": "the same on the method's own objective_curve_",
            "test_loss_at_target": "method's own final fit (learn=()) at that "
            "alpha on the inner-training rows; exact_test_loss_at_target: the "
            "exact minimizer's",
            "test_loss_end": "the estimator after the whole budget (refit on the "
            "inner-training rows)",
        },
        "results": results,
        "markdown": table,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {args.output}")
    return report


if __name__ == "__main__":
    main()
