"""Benchmark "no recompiling per fit": a 5-fold CV against one cold fit.

The estimator is ``make_pipeline(StandardScaler(),
HOLogisticRegression(random_state=0))`` on breast_cancer. Each measurement runs
in a fresh Python process (this file with ``--child MODE``), so every JAX program
is compiled from scratch and the persistent compilation cache is disabled:

- ``cold_fit``: one ``fit(X, y)``;
- ``cv``: ``cross_val_score(pipeline, X, y, cv=5, n_jobs=1)``;
- ``refit`` (one process): fit, then fit again on the same data, on a different
  random validation split, on a few rows fewer (same shape bucket) and on a
  CV-fold-sized subset (another bucket), counting XLA backend compilations
  (``jax.monitoring``) and reading the jit caches of the implicit method's two
  programs.

Timings exclude the imports (reported apart). The goal is
``median(cv) / median(cold_fit) <= 1.5``.

Usage::

    python benchmarks/bench_cv_compile.py            # 3 fresh processes each
    python benchmarks/bench_cv_compile.py --quick    # 1 each, ~1-2 minutes
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

from machine import machine_info

RESULTS = Path(__file__).resolve().parent / "results"
MARKER = "BENCH_RESULT "
GOAL = 1.5
CHILD_MODES = ("cold_fit", "cv", "refit")


# ---- inside a child process --------------------------------------------------
class CompileCounter:
    """Counts XLA backend compilations through :mod:`jax.monitoring`."""

    EVENT = "/jax/core/compile/backend_compile_duration"

    def __init__(self):
        import jax

        self.events = []
        jax.monitoring.register_event_duration_secs_listener(self._listen)

    def _listen(self, event, duration_secs, **kwargs):
        if event == self.EVENT:
            self.events.append((str(kwargs.get("fun_name", "?")), duration_secs))

    def mark(self):
        """The number of events so far, to diff against later."""
        return len(self.events)

    def since(self, mark):
        """Count, total seconds and names of the compilations after ``mark``."""
        new = self.events[mark:]
        names = {}
        for name, seconds in new:
            entry = names.setdefault(name, {"count": 0, "seconds": 0.0})
            entry["count"] += 1
            entry["seconds"] += seconds
        return {
            "n_compiles": len(new),
            "compile_s": sum(seconds for _, seconds in new),
            "by_name": names,
        }


def _pipeline(random_state=0):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from skfarho import HOLogisticRegression

    return make_pipeline(StandardScaler(),
                         HOLogisticRegression(random_state=random_state))


def _cache_state(previous_lookups):
    """``cache_info()`` of the cached compiled-step factories and jit cache sizes.

    The jitted functions are looked up through private helpers of
    :mod:`skfarho._base`; each lookup counts as one hit of each factory, so the
    snapshot is taken before it and ``fit_hits`` subtracts the
    ``previous_lookups`` of earlier calls.
    """
    from skfarho.core import outer

    state = {}
    for name in ("compiled_outer_step", "compiled_solve_inner"):
        info = getattr(outer, name).cache_info()._asdict()
        info["fit_hits"] = info["hits"] - previous_lookups
        state[f"{name}.cache_info"] = info
    try:
        from skfarho.core.host_implicit import HostImplicit, host_programs

        estimator = _pipeline()[-1]
        estimator.classes_ = [0, 1]  # the binary problem, without fitting
        # the programs of the estimator's default hypergradient="implicit"
        problem = estimator._problem(estimator._objective())
        for batched in (False, True):
            programs = host_programs(problem, HostImplicit().linear_solver, batched)
            for name, program in programs.items():
                key = f"{name}{'.batched' if batched else ''}._cache_size"
                state[key] = program._cache_size()
    except Exception as error:  # private API changed: report, do not fail
        state["jit_cache_size_error"] = f"{type(error).__name__}: {error}"
    return state


def child(mode):
    """Run one measurement in this (fresh) process and print its JSON."""
    warnings.filterwarnings("ignore")
    start = time.perf_counter()
    import jax

    counter = CompileCounter()
    import numpy as np
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import cross_val_score

    import skfarho  # noqa: F401

    result = {"mode": mode, "import_s": time.perf_counter() - start,
              "jax_enable_compilation_cache": jax.config.jax_enable_compilation_cache}
    X, y = load_breast_cancer(return_X_y=True)
    mark = counter.mark()
    if mode == "cold_fit":
        pipe = _pipeline()
        start = time.perf_counter()
        pipe.fit(X, y)
        result["seconds"] = time.perf_counter() - start
        result["n_iter"] = int(pipe[-1].n_iter_)
        result["train_accuracy"] = float(pipe.score(X, y))
        result.update(counter.since(mark))
    elif mode == "cv":
        start = time.perf_counter()
        scores = cross_val_score(_pipeline(), X, y, cv=5, n_jobs=1)
        result["seconds"] = time.perf_counter() - start
        result["scores"] = scores.tolist()
        result.update(counter.since(mark))
    elif mode == "refit":
        rng = np.random.default_rng(0)
        fold = np.sort(rng.permutation(len(y))[: int(0.8 * len(y))])
        cases = [
            ("first fit", X, y, 0),
            ("same data again", X, y, 0),
            ("different random split", X, y, 1),
            ("5 rows fewer (same bucket)", X[:-5], y[:-5], 0),
            ("CV-fold size (other bucket)", X[fold], y[fold], 0),
            ("CV-fold size again", X[fold[::-1]], y[fold[::-1]], 2),
        ]
        result["fits"] = []
        for index, (label, X_fit, y_fit, seed) in enumerate(cases):
            mark = counter.mark()
            pipe = _pipeline(seed)
            start = time.perf_counter()
            pipe.fit(X_fit, y_fit)
            entry = {"case": label, "n_samples": len(y_fit), "random_state": seed,
                     "seconds": time.perf_counter() - start,
                     "n_iter": int(pipe[-1].n_iter_)}
            entry.update(counter.since(mark))
            entry.update(_cache_state(previous_lookups=index))
            result["fits"].append(entry)
    else:
        raise ValueError(f"Unknown child mode {mode!r}.")
    print(MARKER + json.dumps(result), flush=True)


# ---- in the parent process ---------------------------------------------------
def run_child(mode, timeout):
    """Run ``child(mode)`` in a fresh interpreter; return its JSON."""
    env = dict(os.environ)
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    env["JAX_ENABLE_COMPILATION_CACHE"] = "false"
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", mode],
        capture_output=True, text=True, env=env, timeout=timeout,
    )
    wall = time.perf_counter() - start
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARKER)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"child {mode!r} failed (exit {proc.returncode}):\n"
                           f"{proc.stderr[-3000:]}")
    result = json.loads(lines[-1][len(MARKER):])
    result["process_wall_s"] = wall
    return result


def summarize(runs, key="seconds"):
    """Median, min, max and all values of ``key`` over runs."""
    values = [run[key] for run in runs]
    return {"median": statistics.median(values), "min": min(values),
            "max": max(values), "all": values}


def markdown(summary, refit):
    """The results as markdown tables."""
    cold, cv = summary["cold_fit"], summary["cv"]
    lines = [
        "| measurement | runs | median (s) | min (s) | max (s) | XLA compiles "
        "(median) | import (s, median) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, entry in (("one cold fit", cold), ("5-fold cross_val_score", cv)):
        s = entry["seconds"]
        lines.append(
            f"| {label} | {len(s['all'])} | {s['median']:.2f} | {s['min']:.2f} | "
            f"{s['max']:.2f} | {entry['n_compiles']['median']:.0f} | "
            f"{entry['import_s']['median']:.2f} |")
    ratio = summary["ratio_cv_over_cold_fit"]
    lines += ["", f"cv / cold fit = {ratio:.2f} (goal <= {GOAL}: "
              f"{'ok' if ratio <= GOAL else 'MISS'}); including imports: "
              f"{summary['ratio_cv_over_cold_fit_with_imports']:.2f}", ""]
    if refit:
        lines += [
            "Recompilation check (one process; compiles = XLA backend "
            "compilations during that fit):", "",
            "| fit in one process | n | time (s) | XLA compiles | compile (s) "
            "| jit cache size (inner, hypergradient) | outer-step factory "
            "hits/misses |",
            "|---|---:|---:|---:|---:|---|---|",
        ]
        for fit in refit["fits"]:
            info = fit["compiled_outer_step.cache_info"]
            lines.append(
                f"| {fit['case']} | {fit['n_samples']} | {fit['seconds']:.2f} | "
                f"{fit['n_compiles']} | {fit['compile_s']:.2f} | "
                f"{fit.get('inner._cache_size', '-')}, "
                f"{fit.get('hypergradient._cache_size', '-')} | "
                f"{info['fit_hits']}/{info['misses']} |")
    return "\n".join(lines)


def parse_args(argv=None):
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="one fresh process per measurement instead of 3")
    parser.add_argument("--repeats", type=int, default=None,
                        help="fresh processes per timing (default 3, quick 1)")
    parser.add_argument("--output", type=Path, default=None,
                        help="JSON path (default benchmarks/results/cv_compile.json,"
                        " or cv_compile_quick.json with --quick)")
    parser.add_argument("--no-refit-check", action="store_true",
                        help="skip the one-process recompilation check")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds allowed per child process")
    parser.add_argument("--child", choices=CHILD_MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.output is None:
        name = "cv_compile_quick.json" if args.quick else "cv_compile.json"
        args.output = RESULTS / name
    return args


def main(argv=None):
    """Run the children, print markdown tables and write the JSON report."""
    args = parse_args(argv)
    if args.child:
        child(args.child)
        return None
    runs = {"cold_fit": [], "cv": []}
    for repeat in range(args.repeats):  # interleaved, so drift hits both alike
        for mode in runs:
            result = run_child(mode, args.timeout)
            runs[mode].append(result)
            print(f"  run {repeat + 1}/{args.repeats} {mode}: "
                  f"{result['seconds']:.2f}s, {result['n_compiles']} compiles",
                  flush=True)
    summary = {
        mode: {"seconds": summarize(rs), "import_s": summarize(rs, "import_s"),
               "n_compiles": summarize(rs, "n_compiles"),
               "compile_s": summarize(rs, "compile_s")}
        for mode, rs in runs.items()
    }
    cold, cv = summary["cold_fit"], summary["cv"]
    summary["ratio_cv_over_cold_fit"] = (cv["seconds"]["median"]
                                         / cold["seconds"]["median"])
    summary["ratio_cv_over_cold_fit_with_imports"] = (
        (cv["seconds"]["median"] + cv["import_s"]["median"])
        / (cold["seconds"]["median"] + cold["import_s"]["median"]))
    summary["goal"] = GOAL
    summary["goal_met"] = summary["ratio_cv_over_cold_fit"] <= GOAL
    refit = None
    if not args.no_refit_check:
        refit = run_child("refit", args.timeout)
        for fit in refit["fits"]:
            print(f"  refit check, {fit['case']}: {fit['seconds']:.2f}s, "
                  f"{fit['n_compiles']} compiles", flush=True)
    print()
    print(markdown(summary, refit))
    report = {
        "benchmark": "cv_compile",
        "config": {"quick": args.quick, "repeats": args.repeats,
                   "estimator": "make_pipeline(StandardScaler(), "
                   "HOLogisticRegression(random_state=0))",
                   "data": "load_breast_cancer", "cv": 5, "n_jobs": 1},
        "machine": machine_info(),
        "notes": {
            "seconds": "fit or cross_val_score wall time in a fresh process, "
            "imports excluded; persistent compilation cache disabled",
            "n_compiles": "XLA backend compilations counted with "
            "jax.monitoring (event /jax/core/compile/backend_compile_duration); "
            "by_name splits count and seconds by jitted function",
            "cache_info": "functools.lru_cache stats of skfarho.core.outer's "
            "compiled_outer_step / compiled_solve_inner; fit_hits excludes the "
            "benchmark's own lookups; _cache_size is the number of compiled "
            "specializations held by the jitted function",
        },
        "summary": summary,
        "runs": runs,
        "refit_check": refit,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {args.output}")
    return report


if __name__ == "__main__":
    main()
