"""Benchmark the hypergradient methods of :mod:`skfarho.core` against a training run.

For binary logistic regression with one L2 strength per feature, on
breast_cancer and on a synthetic ``make_classification`` problem, and for each
number of inner steps ``T``, this script times (all in float64):

- ``train``: one plain training run, ``Reverse().solve_inner`` (``w_T``);
- ``reverse``, ``reverse_ckpt`` (``checkpoint=True``) and ``reverse_trunc``
  (``truncate=T // 10``);
- ``forward_1`` (one scalar ``log_alpha``) and ``forward_d`` (per-feature
  ``log_alpha``; skipped when its estimated cost exceeds ``--forward-budget``);
- ``implicit`` (``Implicit(tol=1e-6)``) and ``inner_solve`` (its L-BFGS solve
  alone, ``Implicit(tol=1e-6).solve_inner``).

Every function is jitted. Compile time is the first call minus the steady-state
time; steady-state time is the median of ``--repeats`` calls after the first.
Peak memory is XLA's compile-time buffer assignment
(``jit(f).lower(*args).compile().memory_analysis()``): ``temp_size_in_bytes``
is the proxy reported (arguments and outputs are listed separately).

Usage::

    python benchmarks/bench_hypergradient.py            # full configuration
    python benchmarks/bench_hypergradient.py --quick    # smoke run, ~1 minute
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from machine import machine_info
from sklearn.datasets import load_breast_cancer, make_classification
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from skfarho.core import (
    BilevelProblem,
    Forward,
    Implicit,
    Reverse,
    float64_scope,
    gradient_descent,
)

RESULTS = Path(__file__).resolve().parent / "results"
METHODS = (
    "train",
    "reverse",
    "reverse_ckpt",
    "reverse_trunc",
    "forward_1",
    "forward_d",
    "implicit",
    "inner_solve",
)
GOALS = {
    "reverse_over_train": 2.0,
    "implicit_over_inner_solve": 1.3,
    "ckpt_peak_over_plain_peak": 0.25,
}
MEMORY_NOTE = (
    "Peak memory proxy: temp_size_in_bytes of XLA's buffer assignment for the "
    "compiled program (jit(f).lower(*args).compile().memory_analysis()); "
    "arguments and outputs are excluded and listed separately. XLA's "
    "peak_memory_in_bytes is stored too but is not used: on CPU it comes out "
    "below temp_size_in_bytes for the reverse-mode programs."
)


# ---- data and problem --------------------------------------------------------
def load_dataset(name, quick):
    """Standardized train/validation split of a binary classification problem.

    Parameters
    ----------
    name : {"breast_cancer", "synthetic"}
        Dataset; ``synthetic`` is ``make_classification(5000, 500)`` (smaller
        with ``quick``).
    quick : bool
        Shrink the synthetic problem for a smoke run.

    Returns
    -------
    X_train, y_train, X_val, y_val : ndarray
        Float64 arrays, standardized with the training statistics.
    """
    if name == "breast_cancer":
        X, y = load_breast_cancer(return_X_y=True)
    elif name == "synthetic":
        n_samples, n_features = (500, 50) if quick else (5000, 500)
        X, y = make_classification(
            n_samples=n_samples, n_features=n_features, random_state=0
        )
    else:
        raise ValueError(f"Unknown dataset {name!r}.")
    X_train, X_val, y_train, y_val = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0
    )
    scaler = StandardScaler().fit(X_train)
    return (
        scaler.transform(X_train),
        y_train.astype(np.float64),
        scaler.transform(X_val),
        y_val.astype(np.float64),
    )


def mean_logistic_loss(params, X, y):
    """Mean logistic loss for labels in {0, 1}."""
    z = X @ params["w"] + params["b"]
    return jnp.mean(jnp.logaddexp(0.0, z) - y * z)


def inner_loss(params, log_alpha, X, y):
    """Training loss plus ``0.5 * sum(exp(log_alpha) * w**2) / n``."""
    penalty = 0.5 * jnp.sum(jnp.exp(log_alpha) * params["w"] ** 2)
    return mean_logistic_loss(params, X, y) + penalty / X.shape[0]


def outer_loss(params, log_alpha, X, y):
    """Validation mean logistic loss."""
    return mean_logistic_loss(params, X, y)


def make_problem(X_train, num_steps, alpha=1.0):
    """Gradient descent with step ``1 / L`` for ``L`` a curvature bound."""
    n_samples, n_features = X_train.shape
    spectral = np.linalg.norm(X_train, 2) ** 2 / n_samples
    lipschitz = 0.25 * (spectral + 1.0) + alpha / n_samples

    def init_params(log_alpha):
        return {"w": jnp.zeros(n_features), "b": jnp.zeros(())}

    return BilevelProblem(
        inner_loss=inner_loss,
        outer_loss=outer_loss,
        init_params=init_params,
        optimizer=gradient_descent(1.0 / lipschitz),
        num_steps=num_steps,
    )


def method_function(name, problem, num_steps, tol):
    """The jittable ``f(log_alpha, inner_data, outer_data)`` of a benchmark row."""
    hypergradients = {
        "reverse": Reverse(),
        "reverse_ckpt": Reverse(checkpoint=True),
        "reverse_trunc": Reverse(truncate=max(1, num_steps // 10)),
        "forward_1": Forward(),
        "forward_d": Forward(),
        "implicit": Implicit(tol=tol),
    }
    if name == "train":
        return lambda h, inner, outer: Reverse().solve_inner(problem, h, inner)
    if name == "inner_solve":
        return lambda h, inner, outer: Implicit(tol=tol).solve_inner(
            problem, h, inner
        )
    method = hypergradients[name]
    return lambda h, inner, outer: method(problem, h, inner, outer)


# ---- measurement -------------------------------------------------------------
def _call(fn, args):
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return time.perf_counter() - start, out


def memory_stats(jitted, args):
    """XLA's buffer sizes (bytes) of the compiled program, and the AOT time."""
    start = time.perf_counter()
    analysis = jitted.lower(*args).compile().memory_analysis()
    seconds = time.perf_counter() - start
    if analysis is None:
        return {"aot_compile_s": seconds}
    fields = (
        "temp_size_in_bytes",
        "argument_size_in_bytes",
        "output_size_in_bytes",
        "alias_size_in_bytes",
        "generated_code_size_in_bytes",
        "peak_memory_in_bytes",
    )
    stats = {f: getattr(analysis, f, None) for f in fields}
    stats["aot_compile_s"] = seconds
    return stats


def summarize_output(out):
    """Outer value, hypergradient norm and finiteness, for sanity checks."""
    if hasattr(out, "grad"):
        grad = np.asarray(out.grad)
        return {
            "value": float(out.value),
            "grad_norm": float(np.linalg.norm(grad)),
            "finite": bool(out.finite),
        }
    leaves = [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(out)]
    return {"finite": bool(all(np.all(np.isfinite(leaf)) for leaf in leaves))}


def measure(fn, args, repeats, min_seconds=0.0, max_calls=100):
    """Compile time, steady-state time, memory and a summary of one function.

    Parameters
    ----------
    fn : callable
        Function of ``args`` to jit.
    args : tuple
        Device arrays (or pytrees of them).
    repeats : int
        Minimum number of timed calls after the first; the median is the
        steady-state time.
    min_seconds : float, default=0.0
        Keep calling (up to ``max_calls``) until the timed calls add up to this,
        so that sub-millisecond functions get a stable median.
    max_calls : int, default=100
        Cap on the timed calls.

    Returns
    -------
    dict
        ``first_call_s``, ``steady_s`` (median), ``steady_all_s``,
        ``compile_s`` (first minus steady), the memory fields and a summary.
    """
    jitted = jax.jit(fn)
    first, out = _call(jitted, args)
    times = [_call(jitted, args)[0] for _ in range(repeats)]
    while sum(times) < min_seconds and len(times) < max_calls:
        times.append(_call(jitted, args)[0])
    steady = statistics.median(times)
    row = {
        "status": "ok",
        "first_call_s": first,
        "steady_s": steady,
        "steady_all_s": times,
        "compile_s": max(first - steady, 0.0),
    }
    row.update(memory_stats(jitted, args))
    row.update(summarize_output(out))
    return row


def forward_full_estimate(problem_for, args, num_steps, repeats, per_step):
    """Estimated seconds of ``forward_d`` (first call plus ``repeats`` calls).

    ``per_step`` is a known steady-state time per inner step (from a smaller
    ``T``) or None, in which case a probe with few inner steps is timed.
    """
    probe_s = 0.0
    if per_step is None:
        probe_steps = max(1, min(num_steps, 10))
        probe = jax.jit(method_function("forward_d", problem_for(probe_steps),
                                        probe_steps, None))
        start = time.perf_counter()
        probe_first, _ = _call(probe, args)
        steady, _ = _call(probe, args)
        probe_s = time.perf_counter() - start
        per_step = steady / probe_steps
        compile_s = max(probe_first - steady, 0.0)
    else:
        compile_s = 0.0
    estimate = compile_s + per_step * num_steps * (repeats + 1)
    return estimate, per_step, probe_s


# ---- driver ------------------------------------------------------------------


def run_config(dataset, num_steps, args, per_step_cache):
    """Measure every method on one (dataset, T); return the rows."""
    X_train, y_train, X_val, y_val = load_dataset(dataset, args.quick)
    n_features = X_train.shape[1]
    inner = (jnp.asarray(X_train), jnp.asarray(y_train))
    outer = (jnp.asarray(X_val), jnp.asarray(y_val))
    per_feature = jnp.zeros(n_features)
    scalar = jnp.zeros(())

    def problem_for(steps):
        return make_problem(X_train, steps)

    problem = problem_for(num_steps)
    rows = []
    for name in METHODS:
        if name not in args.methods:
            continue
        hparams = scalar if name == "forward_1" else per_feature
        call_args = (hparams, inner, outer)
        row = {
            "dataset": dataset,
            "n_train": X_train.shape[0],
            "n_features": n_features,
            "T": num_steps,
            "method": name,
            "n_hparams": int(hparams.size),
        }
        if name == "forward_d":
            skip = None
            if args.skip_forward_full:
                skip = "skipped: --skip-forward-full"
            else:
                estimate, per_step, probe_s = forward_full_estimate(
                    problem_for, call_args, num_steps, args.repeats,
                    per_step_cache.get(dataset),
                )
                per_step_cache.setdefault(dataset, per_step)
                row["estimated_s"] = estimate
                row["probe_s"] = probe_s
                if estimate > args.forward_budget:
                    skip = (f"skipped: estimated {estimate:.0f}s > "
                            f"--forward-budget {args.forward_budget:.0f}s")
            if skip is not None:
                row["status"] = skip
                rows.append(row)
                print(f"  {dataset} T={num_steps} {name}: {skip}", flush=True)
                continue
        fn = method_function(name, problem, num_steps, args.tol)
        row.update(measure(fn, call_args, args.repeats, args.min_seconds))
        if name == "forward_d":
            per_step_cache[dataset] = row["steady_s"] / num_steps
        print(f"  {dataset} T={num_steps} {name}: steady {row['steady_s']:.4f}s "
              f"compile {row['compile_s']:.2f}s", flush=True)
        rows.append(row)
    return rows


def ratios(rows):
    """Goal ratios per (dataset, T) from the measured rows."""
    table = {}
    for row in rows:
        table.setdefault((row["dataset"], row["T"]), {})[row["method"]] = row

    def steady(r, name):
        return r[name]["steady_s"] if r.get(name, {}).get("status") == "ok" else None

    def temp(r, name):
        if r.get(name, {}).get("status") != "ok":
            return None
        return r[name].get("temp_size_in_bytes")

    out = []
    for (dataset, num_steps), r in table.items():
        pairs = {
            "reverse_over_train": (steady(r, "reverse"), steady(r, "train")),
            "implicit_over_inner_solve": (steady(r, "implicit"),
                                          steady(r, "inner_solve")),
            "ckpt_peak_over_plain_peak": (temp(r, "reverse_ckpt"),
                                          temp(r, "reverse")),
        }
        entry = {"dataset": dataset, "T": num_steps}
        for key, (num, den) in pairs.items():
            value = num / den if num is not None and den else None
            entry[key] = value
            entry[key + "_goal"] = GOALS[key]
            entry[key + "_met"] = None if value is None else value <= GOALS[key]
        out.append(entry)
    return out


def _fmt(value, scale=1.0, digits=3):
    if value is None:
        return "-"
    return f"{value * scale:.{digits}f}"


def markdown(rows, ratio_rows):
    """The results as two markdown tables."""
    lines = [
        "| dataset | T | method | #h | compile (s) | steady (ms) | temp (MiB) "
        "| status |",
        "|---|---:|---|---:|---:|---:|---:|---|",
    ]
    mib = 1.0 / 2**20
    for r in rows:
        ok = r.get("status") == "ok"
        lines.append(
            f"| {r['dataset']} | {r['T']} | {r['method']} | {r['n_hparams']} | "
            f"{_fmt(r.get('compile_s')) if ok else '-'} | "
            f"{_fmt(r.get('steady_s'), 1e3, 2) if ok else '-'} | "
            f"{_fmt(r.get('temp_size_in_bytes'), mib, 3) if ok else '-'} | "
            f"{r['status']} |"
        )
    lines += [
        "",
        "| dataset | T | reverse/train (<= 2) | implicit/inner solve (<= 1.3) "
        "| ckpt temp/plain temp (<= 0.25 at T=1000) |",
        "|---|---:|---:|---:|---:|",
    ]

    def cell(entry, key):
        value = entry[key]
        if value is None:
            return "-"
        return f"{value:.3f} {'ok' if entry[key + '_met'] else 'MISS'}"

    for e in ratio_rows:
        lines.append(
            f"| {e['dataset']} | {e['T']} | {cell(e, 'reverse_over_train')} | "
            f"{cell(e, 'implicit_over_inner_solve')} | "
            f"{cell(e, 'ckpt_peak_over_plain_peak')} |"
        )
    return "\n".join(lines)


def parse_args(argv=None):
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny smoke configuration (small data, T = 50)")
    parser.add_argument("--output", type=Path, default=None,
                        help="JSON path (default benchmarks/results/hypergradient"
                        ".json, or hypergradient_quick.json with --quick)")
    parser.add_argument("--datasets", nargs="+",
                        default=["breast_cancer", "synthetic"],
                        choices=["breast_cancer", "synthetic"])
    parser.add_argument("--steps", nargs="+", type=int, default=None,
                        help="inner steps T (default 100 1000; quick: 50)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS),
                        choices=METHODS)
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed calls after warm-up (>= 3; default 5, quick 3)")
    parser.add_argument("--min-seconds", type=float, default=None,
                        help="keep timing a function until its timed calls add up "
                        "to this many seconds, up to 100 calls (default 0.5, "
                        "quick 0.2)")
    parser.add_argument("--tol", type=float, default=1e-6,
                        help="implicit method's inner and linear-system tolerance")
    parser.add_argument("--skip-forward-full", action="store_true",
                        help="skip forward mode with one hyperparameter per feature")
    parser.add_argument("--forward-budget", type=float, default=None,
                        help="skip forward_d when its estimated seconds exceed "
                        "this (default 180, quick 30)")
    args = parser.parse_args(argv)
    if args.steps is None:
        args.steps = [50] if args.quick else [100, 1000]
    if args.repeats is None:
        args.repeats = 3 if args.quick else 5
    if args.min_seconds is None:
        args.min_seconds = 0.2 if args.quick else 0.5
    if args.repeats < 3:
        parser.error("--repeats must be >= 3")
    if args.forward_budget is None:
        args.forward_budget = 30.0 if args.quick else 180.0
    if args.output is None:
        name = "hypergradient_quick.json" if args.quick else "hypergradient.json"
        args.output = RESULTS / name
    return args


def main(argv=None):
    """Run the benchmark, print markdown tables and write the JSON report."""
    args = parse_args(argv)
    rows, per_step_cache = [], {}
    start = time.perf_counter()
    with float64_scope():
        for dataset in args.datasets:
            for num_steps in sorted(args.steps):
                rows.extend(run_config(dataset, num_steps, args, per_step_cache))
    ratio_rows = ratios(rows)
    print()
    print(markdown(rows, ratio_rows))
    report = {
        "benchmark": "hypergradient",
        "config": {
            "quick": args.quick,
            "datasets": args.datasets,
            "steps": args.steps,
            "methods": args.methods,
            "repeats": args.repeats,
            "min_seconds": args.min_seconds,
            "tol": args.tol,
            "forward_budget_s": args.forward_budget,
            "skip_forward_full": args.skip_forward_full,
            "dtype": "float64 (float64_scope)",
        },
        "machine": machine_info(),
        "notes": {
            "memory": MEMORY_NOTE,
            "compile_s": "first call minus steady-state time (includes tracing)",
            "steady_s": (f"median of >= {args.repeats} calls after the first "
                         f"(more until they add up to {args.min_seconds}s)"),
            "goals": GOALS,
        },
        "results": rows,
        "ratios": ratio_rows,
        "total_s": time.perf_counter() - start,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=_json_default))
    print(f"\nwrote {args.output}")
    return report


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


if __name__ == "__main__":
    main()
