"""Machine and library description written into every benchmark's JSON."""

import datetime
import os
import platform
import sys

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


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
