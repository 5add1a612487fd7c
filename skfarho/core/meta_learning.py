"""Meta-learning: many few-shot inner problems, one set of hyperparameters.

Two bilevel formulations from FAR-HO (Franceschi et al., 2018), on episodes of
``n_way``-way ``k_shot``-shot classification:

- **hyper-representation** (:func:`hyper_representation_problem`): the
  hyperparameters are a feature map ``phi(x) = act(x W + b)`` shared by all
  tasks; each task's inner problem trains its own linear softmax head on
  ``phi(support set)`` by ``num_steps`` gradient steps (L2 on the head); the
  outer objective is the cross-entropy of the trained head on the task's query
  set;
- **learned initialization** (:func:`learned_initialization_problem`,
  MAML-style): the hyperparameters are the *initial* weights of a
  one-hidden-layer network that every task fine-tunes on its support set.

The meta-objective is the mean query loss over a batch of tasks: wrap any
hypergradient method in :class:`~skfarho.core.Batched` (``vmap`` over the
leading episode axis of the data). :func:`meta_train` draws a new batch of
episodes at every outer step; :func:`~skfarho.core.minimize_hyperparameters`
works too, on a fixed batch. :func:`make_episodes` builds the episodes from any
labelled data set, :func:`query_accuracy` evaluates on held-out episodes.

If ``hparams`` holds a ``"log_lr"`` entry, the inner learning rate is
``exp(hparams["log_lr"])`` and is meta-learned with the rest.

Examples
--------
Meta-train a representation on episodes of 3 Gaussian blobs per class, with a
fixed batch of episodes and :func:`~skfarho.core.minimize_hyperparameters`:

>>> import numpy as np
>>> import optax
>>> from skfarho.core import Batched, Reverse, minimize_hyperparameters
>>> from skfarho.core.meta_learning import (
...     hyper_representation_problem, init_representation, make_episodes)
>>> rng = np.random.default_rng(0)
>>> y = np.repeat(np.arange(6), 20)
>>> X = rng.normal(size=(6, 5))[y] + 0.5 * rng.normal(size=(120, 5))
>>> episodes = make_episodes(X, y, n_way=3, k_shot=2, n_query=4,
...                          n_episodes=8, rng=0)
>>> episodes.support_X.shape, episodes.query_y.shape
((8, 6, 5), (8, 12))
>>> problem = hyper_representation_problem(n_way=3, num_steps=10)
>>> result = minimize_hyperparameters(
...     problem, init_representation(5, 8, rng=0), episodes.inner,
...     episodes.outer, method=Batched(Reverse()), optimizer=optax.adam(0.05),
...     num_steps=20)
>>> bool(result.history["value"][-1] < result.history["value"][0])
True
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from skfarho.core.batch import Batched
from skfarho.core.dynamics import gradient_descent
from skfarho.core.outer import DivergenceError
from skfarho.core.problem import BilevelProblem
from skfarho.core.reverse import Reverse
from skfarho.core.unroll import unrolled_params

PyTree = Any

ACTIVATIONS = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "logistic": jax.nn.sigmoid,
    "identity": lambda z: z,
}


# ---- episodes ---------------------------------------------------------------
class Episodes(NamedTuple):
    """A stack of few-shot episodes; every array has a leading episode axis.

    Attributes
    ----------
    support_X : ndarray of shape (n_episodes, n_way * k_shot, n_features)
        Support (training) inputs of every episode, class by class.
    support_y : ndarray of shape (n_episodes, n_way * k_shot)
        Support labels in ``0 .. n_way - 1``.
    query_X : ndarray of shape (n_episodes, n_way * n_query, n_features)
        Query (validation) inputs.
    query_y : ndarray of shape (n_episodes, n_way * n_query)
        Query labels in ``0 .. n_way - 1``.
    classes : ndarray of shape (n_episodes, n_way)
        The original class of each episode label: ``classes[e, k]`` is the class
        called ``k`` in episode ``e``.
    """

    support_X: np.ndarray
    support_y: np.ndarray
    query_X: np.ndarray
    query_y: np.ndarray
    classes: np.ndarray

    @property
    def inner(self) -> tuple:
        """``(support_X, support_y)``: the inner data of the bilevel problem."""
        return (self.support_X, self.support_y)

    @property
    def outer(self) -> tuple:
        """``(query_X, query_y)``: the outer data of the bilevel problem."""
        return (self.query_X, self.query_y)

    @property
    def n_episodes(self) -> int:
        """Number of episodes."""
        return len(self.support_X)

    def select(self, index) -> Episodes:
        """The episodes at ``index`` (an integer array, a slice or a mask)."""
        return Episodes(*(np.asarray(part)[index] for part in self))


def make_episodes(X, y, n_way: int, k_shot: int, n_query: int, n_episodes: int,
                  rng=None) -> Episodes:
    """Sample ``n_way``-way ``k_shot``-shot episodes from a labelled data set.

    Each episode draws ``n_way`` distinct classes of ``y`` in random order (the
    ``k``-th drawn class gets label ``k``, so labels carry no meaning across
    episodes), then ``k_shot + n_query`` distinct rows of each class: the first
    ``k_shot`` go to the support set, the others to the query set. For
    meta-testing, sample from classes never seen in meta-training.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Inputs (kept in their floating dtype).
    y : array-like of shape (n_samples,)
        Class labels, any type.
    n_way : int
        Classes per episode.
    k_shot : int
        Support examples per class.
    n_query : int
        Query examples per class.
    n_episodes : int
        Number of episodes.
    rng : int, numpy.random.Generator or None, default=None
        Seed or generator.

    Returns
    -------
    Episodes
        The episodes, stacked on a leading axis; labels are ``int32``.

    Examples
    --------
    >>> import numpy as np
    >>> X, y = np.arange(40.0).reshape(20, 2), np.repeat([3, 5, 7, 9], 5)
    >>> episodes = make_episodes(X, y, n_way=2, k_shot=1, n_query=2,
    ...                          n_episodes=4, rng=0)
    >>> episodes.support_X.shape, episodes.query_X.shape
    ((4, 2, 2), (4, 4, 2))
    >>> episodes.support_y[0].tolist(), episodes.query_y[0].tolist()
    ([0, 1], [0, 0, 1, 1])
    """
    X, y = np.asarray(X), np.asarray(y)
    if not np.issubdtype(X.dtype, np.floating):
        X = X.astype(np.float64)
    if X.ndim != 2 or len(X) != len(y):
        raise ValueError(f"X must be 2-d with one row per label, got X of shape "
                         f"{X.shape} and {len(y)} labels.")
    for name, value, low in (("n_way", n_way, 2), ("k_shot", k_shot, 1),
                             ("n_query", n_query, 1), ("n_episodes", n_episodes, 1)):
        if int(value) != value or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")
    classes, inverse = np.unique(y, return_inverse=True)
    if len(classes) < n_way:
        raise ValueError(f"n_way={n_way} needs at least {n_way} classes, y has "
                         f"{len(classes)}.")
    members = [np.flatnonzero(inverse == c) for c in range(len(classes))]
    per_class = k_shot + n_query
    smallest = min(len(m) for m in members)
    if smallest < per_class:
        raise ValueError(f"k_shot + n_query = {per_class} rows per class are needed; "
                         f"the smallest class has {smallest}.")
    rng = np.random.default_rng(rng)
    picked = np.empty((n_episodes, n_way), dtype=np.intp)
    rows = np.empty((n_episodes, n_way, per_class), dtype=np.intp)
    for e in range(n_episodes):
        picked[e] = rng.choice(len(classes), n_way, replace=False)
        for k, c in enumerate(picked[e]):
            rows[e, k] = rng.choice(members[c], per_class, replace=False)
    support = rows[:, :, :k_shot].reshape(n_episodes, -1)
    query = rows[:, :, k_shot:].reshape(n_episodes, -1)
    labels = np.arange(n_way, dtype=np.int32)
    return Episodes(
        X[support],
        np.broadcast_to(np.repeat(labels, k_shot), support.shape).copy(),
        X[query],
        np.broadcast_to(np.repeat(labels, n_query), query.shape).copy(),
        classes[picked],
    )


# ---- models -----------------------------------------------------------------
def cross_entropy(scores, y):
    """Mean softmax cross-entropy of ``scores`` (n, K) for integer labels ``y``."""
    picked = jnp.take_along_axis(scores, y[:, None].astype(jnp.int32), axis=1)[:, 0]
    return jnp.mean(jax.nn.logsumexp(scores, axis=1) - picked)


def _activation(name: str):
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got "
                         f"{name!r}.")
    return ACTIVATIONS[name]


def _inner_learning_rate(learning_rate: float):
    def coefficient(hparams):
        if "log_lr" in hparams:
            return jnp.exp(hparams["log_lr"])
        return learning_rate

    return coefficient


def _glorot(rng, fan_in, fan_out):
    bound = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, (fan_in, fan_out))


def init_representation(n_features: int, n_hidden: int, rng=None) -> dict:
    """Glorot-uniform weights of a representation ``act(x W + b)``.

    Parameters
    ----------
    n_features : int
        Input dimension.
    n_hidden : int
        Dimension of the representation.
    rng : int, numpy.random.Generator or None, default=None
        Seed or generator.

    Returns
    -------
    dict
        ``{"W": (n_features, n_hidden), "b": (n_hidden,)}`` (NumPy, ``b`` zero).

    Examples
    --------
    >>> {k: v.shape for k, v in init_representation(64, 32, rng=0).items()}
    {'W': (64, 32), 'b': (32,)}
    """
    rng = np.random.default_rng(rng)
    return {"W": _glorot(rng, n_features, n_hidden), "b": np.zeros(n_hidden)}


def init_network(n_features: int, n_hidden: int, n_way: int, rng=None) -> dict:
    """Glorot-uniform weights of a one-hidden-layer network (biases zero).

    Parameters
    ----------
    n_features : int
        Input dimension.
    n_hidden : int
        Hidden units.
    n_way : int
        Outputs (classes per episode).
    rng : int, numpy.random.Generator or None, default=None
        Seed or generator.

    Returns
    -------
    dict
        ``{"W1": (n_features, n_hidden), "b1": (n_hidden,), "W2": (n_hidden,
        n_way), "b2": (n_way,)}`` (NumPy).

    Examples
    --------
    >>> sorted(init_network(64, 32, 5, rng=0))
    ['W1', 'W2', 'b1', 'b2']
    """
    rng = np.random.default_rng(rng)
    return {"W1": _glorot(rng, n_features, n_hidden), "b1": np.zeros(n_hidden),
            "W2": _glorot(rng, n_hidden, n_way), "b2": np.zeros(n_way)}


@dataclass(frozen=True)
class FewShotProblem(BilevelProblem):
    """A :class:`~skfarho.core.BilevelProblem` that also knows how to predict.

    See :class:`~skfarho.core.BilevelProblem` for the other parameters.

    Parameters
    ----------
    scores : callable
        ``scores(params, hparams, X) -> (n, n_way)``: the class scores of the
        task model with inner parameters ``params``; the outer loss is their
        cross-entropy on the query set.
    """

    scores: Callable[..., jax.Array] | None = None


@functools.lru_cache(maxsize=32)
def hyper_representation_problem(n_way: int, num_steps: int = 15,
                                 learning_rate: float = 0.5,
                                 head_l2: float = 1e-3,
                                 activation: str = "tanh") -> FewShotProblem:
    """A shared representation as hyperparameter, a per-task head as parameters.

    Hyperparameters ``{"W": (d, h), "b": (h,)}`` (optionally ``"log_lr"``)
    define ``phi(x) = act(x W + b)``. Inner parameters: a softmax head
    ``{"W": (h, n_way), "b": (n_way,)}`` started at zero and trained by
    ``num_steps`` steps of gradient descent on

    .. math::

        \\frac1{n_s} \\sum_{i \\in S} \\mathrm{CE}(\\phi(x_i) V + c, y_i)
        + \\frac{\\lambda}{2} \\lVert V \\rVert^2;

    outer loss: the query cross-entropy of the trained head. Inner data
    ``(support_X, support_y)``, outer data ``(query_X, query_y)``.

    Parameters
    ----------
    n_way : int
        Classes per episode.
    num_steps : int, default=15
        Inner gradient steps.
    learning_rate : float, default=0.5
        Inner learning rate, unless ``hparams`` holds ``"log_lr"``.
    head_l2 : float, default=1e-3
        L2 strength ``lambda`` on the head's weights.
    activation : {"tanh", "relu", "logistic", "identity"}, default="tanh"
        Non-linearity of the representation. ``"identity"`` with ``W`` the
        identity matrix is a linear head on the raw inputs (a baseline).

    Returns
    -------
    FewShotProblem
        The problem (cached: equal arguments give the same object, so compiled
        steps are reused).

    Examples
    --------
    >>> import numpy as np
    >>> problem = hyper_representation_problem(n_way=2, num_steps=5)
    >>> hparams = init_representation(3, 4, rng=0)
    >>> head = problem.init_params(hparams)
    >>> head["W"].shape
    (4, 2)
    >>> X, y = np.eye(3)[[0, 1, 2, 0]], np.array([0, 1, 1, 0])
    >>> round(float(problem.outer_loss(head, hparams, X, y)), 4)  # log(2)
    0.6931
    """
    act = _activation(activation)

    def features(hparams, X):
        return act(X @ hparams["W"] + hparams["b"])

    def scores(head, hparams, X):
        return features(hparams, X) @ head["W"] + head["b"]

    def inner_loss(head, hparams, X, y):
        penalty = 0.5 * head_l2 * jnp.sum(head["W"] ** 2)
        return cross_entropy(scores(head, hparams, X), y) + penalty

    def outer_loss(head, hparams, X, y):
        return cross_entropy(scores(head, hparams, X), y)

    def init_params(hparams):
        W = jnp.asarray(hparams["W"])
        return {"W": jnp.zeros((W.shape[1], n_way), W.dtype),
                "b": jnp.zeros(n_way, W.dtype)}

    return FewShotProblem(inner_loss, outer_loss, init_params,
                          gradient_descent(_inner_learning_rate(learning_rate)),
                          num_steps, scores)


_NETWORK_KEYS = ("W1", "b1", "W2", "b2")


@functools.lru_cache(maxsize=32)
def learned_initialization_problem(num_steps: int = 5, learning_rate: float = 0.5,
                                   l2: float = 0.0,
                                   activation: str = "tanh") -> FewShotProblem:
    """The initial weights of a one-hidden-layer network as hyperparameters.

    MAML (Finn et al., 2017) with the exact second-order hypergradient: every
    task fine-tunes the whole network ``act(x W1 + b1) W2 + b2`` from the
    hyperparameters ``{"W1", "b1", "W2", "b2"}`` (see :func:`init_network`;
    optionally ``"log_lr"`` too) by ``num_steps`` gradient steps on its support
    cross-entropy plus ``l2 / 2`` times the squared weights; the outer loss is
    the query cross-entropy of the fine-tuned network.

    Parameters
    ----------
    num_steps : int, default=5
        Inner (fine-tuning) gradient steps.
    learning_rate : float, default=0.5
        Inner learning rate, unless ``hparams`` holds ``"log_lr"``.
    l2 : float, default=0.0
        L2 strength on ``W1`` and ``W2`` during fine-tuning.
    activation : {"tanh", "relu", "logistic", "identity"}, default="tanh"
        Hidden non-linearity.

    Returns
    -------
    FewShotProblem
        The problem (cached on its arguments).

    Examples
    --------
    >>> problem = learned_initialization_problem(num_steps=3)
    >>> hparams = {**init_network(3, 4, 2, rng=0), "log_lr": -1.0}
    >>> sorted(problem.init_params(hparams))  # log_lr is not a weight
    ['W1', 'W2', 'b1', 'b2']
    """
    act = _activation(activation)

    def scores(params, hparams, X):
        return act(X @ params["W1"] + params["b1"]) @ params["W2"] + params["b2"]

    def inner_loss(params, hparams, X, y):
        penalty = 0.5 * l2 * (jnp.sum(params["W1"] ** 2) + jnp.sum(params["W2"] ** 2))
        return cross_entropy(scores(params, hparams, X), y) + penalty

    def outer_loss(params, hparams, X, y):
        return cross_entropy(scores(params, hparams, X), y)

    def init_params(hparams):
        return {key: hparams[key] for key in _NETWORK_KEYS}

    return FewShotProblem(inner_loss, outer_loss, init_params,
                          gradient_descent(_inner_learning_rate(learning_rate)),
                          num_steps, scores)


# ---- training and evaluation ------------------------------------------------
class MetaTrainResult(NamedTuple):
    """What :func:`meta_train` returns.

    Attributes
    ----------
    hparams : PyTree
        The hyperparameters after the last outer step.
    history : dict of ndarray
        ``"value"``: the meta-training objective (mean query loss of the batch)
        at each outer step; ``"time"``: seconds since the start.
    n_steps : int
        Outer steps taken.
    """

    hparams: PyTree
    history: dict
    n_steps: int


@functools.lru_cache(maxsize=32)
def _compiled_meta_step(problem, method, optimizer):
    def step(hparams, opt_state, inner, outer):
        result = method(problem, hparams, inner, outer)
        updates, opt_state = optimizer.update(result.grad, opt_state, hparams)
        return (optax.apply_updates(hparams, updates), opt_state, result.value,
                result.finite)

    return jax.jit(step)


@functools.cache
def _default_meta_optimizer():
    return optax.adam(1e-2)


def meta_train(problem, hparams: PyTree, episodes, *, batch_size: int = 16,
               num_steps: int = 200, method=None,
               optimizer: optax.GradientTransformation | None = None,
               rng=None, callback=None) -> MetaTrainResult:
    """Meta-learn the hyperparameters on a new batch of episodes at each step.

    Parameters
    ----------
    problem : BilevelProblem
        A few-shot problem, e.g. from :func:`hyper_representation_problem`.
    hparams : PyTree
        Initial hyperparameters.
    episodes : Episodes or callable
        A pool of meta-training episodes (each step draws ``batch_size`` of them
        without replacement), or ``episodes(rng) -> Episodes``, called at each
        step with a NumPy generator to sample a fresh batch.
    batch_size : int, default=16
        Episodes per outer step (pool only).
    num_steps : int, default=200
        Outer steps.
    method : callable, default=Batched(Reverse())
        A batched hypergradient method; the objective is the mean query loss of
        the batch.
    optimizer : optax.GradientTransformation, default=optax.adam(1e-2)
        Outer optimizer (reuse the same object to reuse the compiled step).
    rng : int, numpy.random.Generator or None, default=None
        Seed or generator of the batches.
    callback : callable, optional
        ``callback(step, hparams, value)`` after each step; returning True stops.

    Returns
    -------
    MetaTrainResult
        Final hyperparameters and the objective per step.

    Raises
    ------
    DivergenceError
        When the inner training or the hypergradient stop being finite.
    """
    method = Batched(Reverse()) if method is None else method
    optimizer = _default_meta_optimizer() if optimizer is None else optimizer
    step_fn = _compiled_meta_step(problem, method, optimizer)
    rng = np.random.default_rng(rng)
    hparams = jax.tree_util.tree_map(jnp.asarray, hparams)
    opt_state = optimizer.init(hparams)
    values, times, start = [], [], time.perf_counter()
    for k in range(num_steps):
        if callable(episodes):
            batch = episodes(rng)
        else:
            if batch_size > episodes.n_episodes:
                raise ValueError(f"batch_size={batch_size} exceeds the pool of "
                                 f"{episodes.n_episodes} episodes.")
            batch = episodes.select(rng.choice(episodes.n_episodes, batch_size,
                                               replace=False))
        new_hparams, opt_state, value, finite = step_fn(
            hparams, opt_state, batch.inner, batch.outer)
        if not bool(finite):
            raise DivergenceError(
                f"Non-finite meta-objective or hypergradient at outer step {k}: "
                "lower the inner learning rate or the outer learning rate.")
        values.append(float(value))
        times.append(time.perf_counter() - start)
        hparams = new_hparams
        if callback is not None and callback(k, hparams, value):
            break
    history = {"value": np.asarray(values), "time": np.asarray(times)}
    return MetaTrainResult(hparams, history, len(values))


@functools.lru_cache(maxsize=32)
def _compiled_accuracy(problem):
    def one(hparams, support_X, support_y, query_X, query_y):
        params = unrolled_params(problem, hparams, (support_X, support_y))
        predicted = jnp.argmax(problem.scores(params, hparams, query_X), axis=1)
        return jnp.mean(predicted == query_y)

    return jax.jit(jax.vmap(one, in_axes=(None, 0, 0, 0, 0)))


def query_accuracy(problem: FewShotProblem, hparams: PyTree, episodes: Episodes,
                   *, per_episode: bool = False):
    """Query accuracy after the inner training, on (held-out) episodes.

    Parameters
    ----------
    problem : FewShotProblem
        The problem whose ``num_steps`` inner steps train each episode's model.
    hparams : PyTree
        The (meta-learned) hyperparameters.
    episodes : Episodes
        The evaluation episodes (from meta-test classes, typically).
    per_episode : bool, default=False
        Return the accuracy of every episode instead of the mean.

    Returns
    -------
    float or ndarray of shape (n_episodes,)
        Mean query accuracy, or one per episode.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat(np.arange(4), 10)
    >>> X = 3.0 * np.eye(4)[y] + 0.1 * rng.normal(size=(40, 4))
    >>> episodes = make_episodes(X, y, 2, 1, 3, n_episodes=5, rng=0)
    >>> problem = hyper_representation_problem(n_way=2, num_steps=20)
    >>> float(query_accuracy(problem, init_representation(4, 8, rng=0), episodes))
    1.0
    """
    if getattr(problem, "scores", None) is None:
        raise TypeError("query_accuracy needs a FewShotProblem (with scores).")
    hparams = jax.tree_util.tree_map(jnp.asarray, hparams)
    accuracy = np.asarray(_compiled_accuracy(problem)(hparams, *episodes.inner,
                                                     *episodes.outer))
    return accuracy if per_episode else float(accuracy.mean())
