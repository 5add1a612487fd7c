"""One device against all devices: the same fit with its rows sharded.

Every fit runs twice: on one device (JAX's default placement), then inside
:func:`skfarho.core.sharding.data_parallel` (rows split over every device,
coefficients replicated). Per problem and hypergradient method: first fit
(compilation included), median of ``--repeats`` warm fits, the speed-up of the
warm fits, and the largest difference between the two models (``coef_``,
``intercept_``, ``alpha_``; the acceptance bound is 1e-6).

Methods: ``reverse`` (``hypergradient="reverse"``, ``cv=3``) and
``implicit_traced`` (``Implicit(CG(maxiter=200))``, one traced XLA program per
outer step, on a holdout), both traceable, so both are sharded. The outer loop
runs a fixed number of steps (no early stopping), so both placements do the
same work.

Usage::

    python benchmarks/bench_devices.py                    # every GPU of a machine
    python benchmarks/bench_devices.py --quick --cpu-devices 4   # 4 simulated CPUs

``--cpu-devices N`` sets ``XLA_FLAGS=--xla_force_host_platform_device_count=N``
(and the CPU platform) before JAX starts. Reports go to
``benchmarks/results/devices[_cpuN][_quick].json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

PROBLEMS = {"quick": [(2000, 50)], "full": [(20000, 200), (100000, 500)]}


def problems(quick):
    from sklearn.datasets import make_classification
    from sklearn.preprocessing import StandardScaler

    for n, d in PROBLEMS["quick" if quick else "full"]:
        X, y = make_classification(n_samples=n, n_features=d, n_informative=d // 5,
                                   random_state=0)
        yield f"synthetic_{n}x{d}", StandardScaler().fit_transform(X), y


def estimators(outer_steps):
    from skfarho import HOLogisticRegression
    from skfarho.core import CG, Implicit

    common = {"outer_steps": outer_steps, "n_iter_no_change": outer_steps,
              "random_state": 0}
    return {
        "reverse": HOLogisticRegression(hypergradient="reverse", cv=3, **common),
        "implicit_traced": HOLogisticRegression(
            hypergradient=Implicit(CG(maxiter=200), max_inner_iter=2000), **common),
    }


def timed_fits(model, X, y, repeats, devices):
    """First fit and warm fits, on one device (``devices=None``) or sharded."""
    from sklearn.base import clone
    from sklearn.exceptions import ConvergenceWarning

    from skfarho.core.sharding import data_parallel

    def fit():
        start = time.perf_counter()
        if devices is None:
            fitted = clone(model).fit(X, y)
        else:
            with data_parallel(devices):
                fitted = clone(model).fit(X, y)
        return fitted, time.perf_counter() - start

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fitted, first = fit()
        runs = [fit()[1] for _ in range(repeats)]
    return fitted, {"first_fit_s": first, "warm_s": statistics.median(runs),
                    "runs": runs, "n_iter": int(fitted.n_iter_)}


def model_difference(a, b):
    import numpy as np

    return max(float(np.max(np.abs(np.asarray(getattr(a, name)) -
                                   np.asarray(getattr(b, name)))))
               for name in ("coef_", "intercept_", "alpha_"))


def markdown(rows, n_devices):
    lines = [f"| problem | method | 1 device warm (s) | {n_devices} devices warm (s) "
             "| speed-up | first fit 1 / all (s) | max model difference |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        one, many = row["one_device"], row["all_devices"]
        lines.append(
            f"| {row['problem']} | {row['method']} | {one['warm_s']:.3f} | "
            f"{many['warm_s']:.3f} | {row['speedup']:.2f}x | "
            f"{one['first_fit_s']:.1f} / {many['first_fit_s']:.1f} | "
            f"{row['max_model_difference']:.1e} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="one small problem, fewer steps (a smoke run)")
    parser.add_argument("--cpu-devices", type=int, default=None,
                        help="simulate this many CPU devices")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--outer-steps", type=int, default=None)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.cpu_devices:
        if "jax" in sys.modules:
            raise RuntimeError("--cpu-devices must be set before JAX starts")
        os.environ["JAX_PLATFORMS"] = "cpu"
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   f" --xla_force_host_platform_device_count="
                                   f"{args.cpu_devices}")
    import jax
    from machine import machine_info

    from skfarho.core import float64_scope

    outer_steps = args.outer_steps or (5 if args.quick else 20)
    devices = jax.devices()
    rows = []
    for problem, X, y in problems(args.quick):
        for method, model in estimators(outer_steps).items():
            with float64_scope():
                one, one_times = timed_fits(model, X, y, args.repeats, None)
                many, many_times = timed_fits(model, X, y, args.repeats, devices)
            row = {"problem": problem, "shape": list(X.shape), "method": method,
                   "outer_steps": outer_steps, "one_device": one_times,
                   "all_devices": many_times,
                   "speedup": one_times["warm_s"] / many_times["warm_s"],
                   "max_model_difference": model_difference(one, many)}
            rows.append(row)
            print(f"{problem} {method}: 1 device {one_times['warm_s']:.3f}s, "
                  f"{len(devices)} devices {many_times['warm_s']:.3f}s, "
                  f"difference {row['max_model_difference']:.1e}", flush=True)
    table = markdown(rows, len(devices))
    print(table)
    name = "devices" + (f"_cpu{args.cpu_devices}" if args.cpu_devices else "")
    name += "_quick" if args.quick else ""
    output = args.output or RESULTS / f"{name}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    report = {"benchmark": "devices", "machine": machine_info(),
              "n_devices": len(devices), "results": rows, "markdown": table}
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {output}")
    if any(row["max_model_difference"] > 1e-6 for row in rows):
        sys.exit("the sharded models differ from the one-device models by > 1e-6")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
