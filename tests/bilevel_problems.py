"""Small bilevel problems shared by the core tests (ridge, binary, multinomial)."""

import jax
import jax.numpy as jnp
import numpy as np

from skfarho.core import (
    BilevelProblem,
    adam,
    from_hparams,
    gradient_descent,
    heavy_ball,
)


def _weights(hparams, n):
    return jax.nn.sigmoid(hparams["sw_logit"]) if "sw_logit" in hparams else jnp.ones(n)


def _penalty(params, hparams):
    alpha = jnp.exp(hparams["log_alpha"])
    weights = params["w"] if params["w"].ndim == 1 else params["w"].T
    # a tiny penalty on the intercepts keeps the multinomial problem strictly convex
    return 0.5 * jnp.sum(alpha * weights**2) + 1e-3 * jnp.sum(params["b"] ** 2)


def _per_sample(kind, params, X, y):
    scores = X @ params["w"] + params["b"]
    if kind == "ridge":
        return 0.5 * (scores - y) ** 2
    if kind == "binary":
        return jnp.logaddexp(0.0, scores) - y * scores
    return jax.nn.logsumexp(scores, axis=1) - jnp.take_along_axis(
        scores, y[:, None], axis=1
    )[:, 0]


def make_data(kind, rng, n_train=30, n_val=20, d=4, n_classes=3):
    X = rng.standard_normal((n_train + n_val, d))
    w = rng.standard_normal((d, n_classes) if kind == "multinomial" else d)
    scores = X @ w
    if kind == "ridge":
        y = scores + 0.3 * rng.standard_normal(len(X))
    elif kind == "binary":
        y = (scores + 0.5 * rng.standard_normal(len(X)) > 0).astype(float)
    else:
        y = np.argmax(scores + 0.5 * rng.standard_normal(scores.shape), axis=1)
    X, y = jnp.asarray(X), jnp.asarray(y)
    return (X[:n_train], y[:n_train]), (X[n_train:], y[n_train:])


def init_params(kind, d, n_classes=3):
    if kind == "multinomial":
        return {"w": jnp.zeros((d, n_classes)), "b": jnp.zeros(n_classes)}
    return {"w": jnp.zeros(d), "b": jnp.zeros(())}


def make_problem(kind, optimizer="gd", num_steps=100, outer_penalty=0.0,
                 learn_init=False, d=4):
    """A problem whose hyperparameters may include everything the issue lists."""

    def inner_loss(params, hparams, X, y):
        weights = _weights(hparams, X.shape[0])
        data = jnp.sum(weights * _per_sample(kind, params, X, y)) / jnp.sum(weights)
        return data + _penalty(params, hparams) / X.shape[0]

    def outer_loss(params, hparams, X, y):
        value = jnp.mean(_per_sample(kind, params, X, y))
        return value + outer_penalty * jnp.sum(hparams["log_alpha"] ** 2)

    learning_rate = from_hparams("log_lr", jnp.exp)
    dynamics = {
        "gd": gradient_descent(learning_rate),
        "momentum": heavy_ball(learning_rate, from_hparams("momentum_logit",
                                                           jax.nn.sigmoid)),
        "adam": adam(learning_rate),
    }[optimizer]
    def init(hparams):
        return hparams["w0"] if learn_init else init_params(kind, d)

    return BilevelProblem(inner_loss, outer_loss, init, dynamics, num_steps)


def make_hparams(kind, rng, n_train=30, d=4, optimizer="gd", learn_init=False,
                 log_lr=-1.2):
    hparams = {
        "log_alpha": jnp.asarray(rng.normal(-1.0, 0.3, d)),
        "sw_logit": jnp.asarray(rng.normal(1.0, 0.5, n_train)),
        "log_lr": jnp.asarray(log_lr),
    }
    if optimizer == "momentum":
        hparams["momentum_logit"] = jnp.asarray(0.0)
    if optimizer == "adam":
        hparams["log_lr"] = jnp.asarray(np.log(0.05))
    if learn_init:
        hparams["w0"] = jax.tree_util.tree_map(
            lambda leaf: jnp.asarray(0.1 * rng.standard_normal(leaf.shape)),
            init_params(kind, d),
        )
    return hparams


def implicit_hparams(kind, rng, **kwargs):
    """:func:`make_hparams` less the learning rate, which implicit methods ignore."""
    hparams = make_hparams(kind, rng, **kwargs)
    hparams.pop("log_lr")
    return hparams


def newton_minimize(fun, params, iterations=30):
    """Exact minimization for reference values: Newton with a dense Hessian."""
    flat, unravel = jax.flatten_util.ravel_pytree(params)

    def flat_fun(v):
        return fun(unravel(v))

    def newton_step(v, _):
        step = jnp.linalg.solve(jax.hessian(flat_fun)(v), jax.grad(flat_fun)(v))
        return v - step, None

    flat, _ = jax.lax.scan(newton_step, flat, None, length=iterations)
    return unravel(flat)


def central_difference(fun, hparams, direction, eps=1e-5):
    """``(f(h + eps d) - f(h - eps d)) / (2 eps)``."""
    plus = jax.tree_util.tree_map(lambda h, v: h + eps * v, hparams, direction)
    minus = jax.tree_util.tree_map(lambda h, v: h - eps * v, hparams, direction)
    return (fun(plus) - fun(minus)) / (2 * eps)


def random_direction(hparams, rng):
    leaves, treedef = jax.tree_util.tree_flatten(hparams)
    leaves = [jnp.asarray(rng.standard_normal(np.shape(leaf))) for leaf in leaves]
    return jax.tree_util.tree_unflatten(treedef, leaves)


def tree_dot(a, b):
    return sum(jnp.vdot(x, y) for x, y in zip(jax.tree_util.tree_leaves(a),
                                              jax.tree_util.tree_leaves(b),
                                              strict=True))


def implicit_reference(problem, data):
    """The outer objective at the exact inner minimizer (Newton), for FD checks."""
    inner, outer = data

    def reference(h):
        params = newton_minimize(lambda w: problem.inner_loss(w, h, *inner),
                                 problem.init_params(h))
        return problem.outer_loss(params, h, *outer)

    return reference
