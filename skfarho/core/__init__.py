"""The functional JAX core: bilevel problems, inner dynamics, hypergradient methods.

Never imports scikit-learn. A hypergradient method is a value that follows
:class:`HypergradientMethod`: ``method(problem, hparams, inner_data, outer_data,
warm_start=None, tol=None, fixed=None) -> HypergradResult``, plus
``init_warm_start``, ``solve_inner``, ``traceable`` and ``divergence_hint``.
"""

from skfarho.core.batch import Batched
from skfarho.core.compilation_cache import enable_persistent_cache
from skfarho.core.dynamics import adam, from_hparams, gradient_descent, heavy_ball
from skfarho.core.forward import Forward
from skfarho.core.host_implicit import HostImplicit
from skfarho.core.implicit import Implicit, ImplicitWarmStart, tolerance_schedule
from skfarho.core.inner_solve import lbfgs_minimize
from skfarho.core.linear_solve import CG, Cholesky, Neumann
from skfarho.core.method import HypergradientMethod
from skfarho.core.newton import newton_minimize
from skfarho.core.online import RTHO, TRHO, OnlineState
from skfarho.core.outer import DivergenceError, OuterResult, minimize_hyperparameters
from skfarho.core.precision import float64_scope
from skfarho.core.problem import BilevelProblem, HypergradResult
from skfarho.core.reverse import Reverse
from skfarho.core.rprop import rprop_secant
from skfarho.core.sharding import data_parallel, row_mesh, shard_rows

__all__ = [
    "Batched",
    "BilevelProblem",
    "CG",
    "Cholesky",
    "DivergenceError",
    "Forward",
    "HostImplicit",
    "HypergradResult",
    "HypergradientMethod",
    "Implicit",
    "ImplicitWarmStart",
    "Neumann",
    "OnlineState",
    "OuterResult",
    "RTHO",
    "TRHO",
    "Reverse",
    "adam",
    "data_parallel",
    "enable_persistent_cache",
    "float64_scope",
    "from_hparams",
    "gradient_descent",
    "heavy_ball",
    "lbfgs_minimize",
    "minimize_hyperparameters",
    "newton_minimize",
    "row_mesh",
    "rprop_secant",
    "shard_rows",
    "tolerance_schedule",
]
