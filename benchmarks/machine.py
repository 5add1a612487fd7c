"""Machine and library description written into every benchmark's JSON, and
the fresh-process runner of the benchmarks that time cold fits."""

import datetime
import json
import os
import platform
import subprocess
import sys
import time

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
MARKER = "BENCH_RESULT "


def report_child_result(result):
    """Print a child's result for :func:`run_child` to read."""
    print(MARKER + json.dumps(result), flush=True)


def run_child(script, spec, timeout, threads=None):
    """Run ``script --child <spec as JSON>`` in a fresh interpreter.

    JAX's persistent compilation cache is off in the child (a cold fit
    compiles from scratch); ``threads`` sets the BLAS/OpenMP thread variables.
    Returns the result the child reported (:func:`report_child_result`) with
    ``process_wall_s``, or ``spec`` with an ``error``.
    """
    env = dict(os.environ)
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    env["JAX_ENABLE_COMPILATION_CACHE"] = "false"
    if threads:
        env.update({key: str(threads) for key in THREAD_VARIABLES})
    start = time.perf_counter()
    command = [sys.executable, str(script), "--child", json.dumps(spec)]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, env=env,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**spec, "error": f"timeout after {timeout:.0f}s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARKER)]
    if proc.returncode != 0 or not lines:
        return {**spec, "error": f"child exited {proc.returncode}: "
                f"{proc.stderr[-1500:]}"}
    result = json.loads(lines[-1][len(MARKER):])
    result["process_wall_s"] = time.perf_counter() - start
    return result


def machine_info():
    """Date, platform, CPUs, JAX devices, library versions and thread variables."""
    import jax
    import jaxlib
    import numpy
    import optax
    import scipy
    import sklearn

    import skfarho

    affinity = getattr(os, "sched_getaffinity", None)
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(affinity(0)) if affinity else None,
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "jax_backend": jax.default_backend(),
        "devices": [str(device) for device in jax.devices()],
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "sklearn": sklearn.__version__,
        "optax": optax.__version__,
        "skfarho": skfarho.__version__,
        "thread_env": {key: os.environ.get(key) for key in THREAD_VARIABLES},
    }
