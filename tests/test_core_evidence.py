"""The evidence outer objective: hypergradients through the implicit method against
central finite differences (float64), ridge's value against the closed-form
marginal likelihood, the softmax null direction, a 1-feature optimum against a
fine scan, and the size limit."""

import dataclasses

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
from bilevel_problems import central_difference, random_direction, tree_dot

from skfarho.core import CG, BilevelProblem, HostImplicit, Implicit
from skfarho.core.evidence import (
    gaussian_neg_log_evidence,
    laplace_neg_log_evidence,
)
from skfarho.core.models import (
    binary_log_loss,
    coef_squares,
    linear_scores,
    multinomial_log_loss,
)

KINDS = ["binary", "multinomial", "ridge"]
N_CLASSES = 3


def _inner_loss(sample_loss):
    """The estimators' inner loss (skfarho._problem) with unit example weights."""

    def inner_loss(params, hparams, X, y, mask, rows):
        data = jnp.sum(mask * sample_loss(linear_scores(params, X), y)) / jnp.sum(mask)
        penalty = 0.5 * jnp.sum(jnp.exp(hparams["log_alpha"]) * coef_squares(params))
        return data + penalty / jnp.sum(mask)

    return inner_loss


def _squared(z, y):
    return 0.5 * (z - y) ** 2


def _setup(kind, rng, n=40, d=5, pad=3, linear=False):
    """Problem, hyperparameters and inner data ``(X, y, mask, rows)`` (padded)."""
    X = rng.standard_normal((n + pad, d))
    w = rng.standard_normal((d, N_CLASSES) if kind == "multinomial" else d)
    noise = 0.5 * rng.standard_normal((n + pad,) + w.shape[1:])
    if kind == "ridge":
        y = X @ w + 1.0 + noise
    elif kind == "binary":
        y = (X @ w + noise > 0).astype(float)
    else:
        y = np.argmax(X @ w + noise, axis=1)
    mask = np.r_[np.ones(n), np.zeros(pad)]
    data = (jnp.asarray(X), jnp.asarray(y), jnp.asarray(mask), jnp.arange(n + pad))
    shape = (d, N_CLASSES) if kind == "multinomial" else (d,)
    init = {"coef": jnp.zeros(shape), "intercept": jnp.zeros(shape[1:])}
    hparams = {"log_alpha": jnp.asarray(rng.normal(0.0, 0.5, d))}
    if kind == "ridge":
        hparams["log_noise_precision"] = jnp.asarray(0.3)
        outer = gaussian_neg_log_evidence(linear_scores, coef_squares, linear=linear)
        loss = _squared
    elif kind == "binary":
        outer = laplace_neg_log_evidence(linear_scores, binary_log_loss, coef_squares,
                                         linear=linear)
        loss = binary_log_loss
    else:
        outer = laplace_neg_log_evidence(
            linear_scores, multinomial_log_loss, coef_squares,
            weights_per_strength=N_CLASSES, shift_invariant=True, linear=linear)
        loss = multinomial_log_loss
    problem = BilevelProblem(inner_loss=_inner_loss(loss), outer_loss=outer,
                             init_params=lambda h: init)
    return problem, hparams, data


def _newton(fun, params, iterations=40):
    """Exact minimizer; ``pinv`` steps ignore the softmax intercepts' null direction."""
    flat, unravel = jax.flatten_util.ravel_pytree(params)

    def flat_fun(v):
        return fun(unravel(v))

    def step(v, _):
        inverse = jnp.linalg.pinv(jax.hessian(flat_fun)(v), hermitian=True)
        return v - inverse @ jax.grad(flat_fun)(v), None

    flat, _ = jax.lax.scan(step, flat, None, length=iterations)
    return unravel(flat)


def _evidence_at_minimum(problem, data):
    """The evidence at the exact inner minimizer, a function of the hparams."""

    def reference(hparams):
        params = _newton(lambda w: problem.inner_loss(w, hparams, *data),
                         problem.init_params(hparams))
        return problem.outer_loss(params, hparams, *data)

    return jax.jit(reference)


def _check_against_fd(result, problem, hparams, data, rng, rtol):
    assert bool(result.finite)
    reference = _evidence_at_minimum(problem, data)
    np.testing.assert_allclose(float(result.value), float(reference(hparams)),
                               rtol=1e-7)
    for _ in range(3):
        direction = random_direction(hparams, rng)
        expected = float(central_difference(reference, hparams, direction))
        got = float(tree_dot(result.grad, direction))
        assert abs(got - expected) <= rtol * max(abs(expected), 1e-3)


@pytest.mark.parametrize("kind", KINDS)
def test_traced_implicit_evidence_matches_finite_differences(kind, rng):
    problem, hparams, data = _setup(kind, rng)
    method = Implicit(CG(maxiter=2000), tol=1e-12, max_inner_iter=5000)
    result = jax.jit(lambda h: method(problem, h, data, data))(hparams)
    _check_against_fd(result, problem, hparams, data, rng, rtol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_host_implicit_evidence_matches_finite_differences(kind, rng):
    problem, hparams, data = _setup(kind, rng)
    result = HostImplicit(tol=1e-11, max_linear_iter=2000)(problem, hparams, data,
                                                           data)
    # SciPy's L-BFGS-B stops short of 1e-11 on the softmax problem: 1e-5, as the
    # other host-side checks
    _check_against_fd(result, problem, hparams, data, rng, rtol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_linear_structure_gives_the_same_value_and_gradients(kind, rng):
    """``linear=True`` (Kronecker-assembled Hessian) equals ``jax.hessian``'s."""
    problem, hparams, data = _setup(kind, rng)
    fast, _, _ = _setup(kind, np.random.default_rng(0), linear=True)
    params = jax.tree_util.tree_map(
        lambda leaf: jnp.asarray(rng.standard_normal(leaf.shape)),
        problem.init_params(hparams))
    generic = jax.value_and_grad(problem.outer_loss, argnums=(0, 1))(
        params, hparams, *data)
    structured = jax.value_and_grad(fast.outer_loss, argnums=(0, 1))(
        params, hparams, *data)
    for got, want in zip(jax.tree_util.tree_leaves(structured),
                         jax.tree_util.tree_leaves(generic), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_hessian_dependence_on_the_minimizer_matters(rng):
    """Dropping d log det H / dw (MacKay's approximation) changes the gradient."""
    problem, hparams, data = _setup("binary", rng)
    method = Implicit(CG(maxiter=2000), tol=1e-12, max_inner_iter=5000)
    exact = method(problem, hparams, data, data).grad["log_alpha"]
    frozen = dataclasses.replace(problem, outer_loss=lambda w, h, *rest:
                                 problem.outer_loss(jax.lax.stop_gradient(w), h,
                                                    *rest))
    direct = method(frozen, hparams, data, data).grad["log_alpha"]
    assert np.max(np.abs(exact - direct)) > 1e-4 * np.max(np.abs(exact))


def _ridge_log_evidence(X, y, alpha, beta):
    """log p(y) with w ~ N(0, diag(alpha beta)^-1), a flat intercept prior, noise
    precision beta: y | b ~ N(b 1, C), C = I / beta + X diag(alpha beta)^-1 X^T,
    and b integrated in closed form."""
    n = len(y)
    C = np.eye(n) / beta + (X / (alpha * beta)) @ X.T
    Ci = np.linalg.inv(C)
    ones = np.ones(n)
    a, c = ones @ Ci @ ones, ones @ Ci @ y
    quad = y @ Ci @ y - c**2 / a
    return (-0.5 * quad - 0.5 * np.linalg.slogdet(C)[1] - 0.5 * n * np.log(2 * np.pi)
            + 0.5 * np.log(2 * np.pi / a))


def test_ridge_evidence_equals_closed_form(rng):
    problem, hparams, data = _setup("ridge", rng)
    X, y, mask = (np.asarray(a) for a in data[:3])
    keep = mask > 0
    for log_beta in (-1.0, 0.3, 2.0):
        hparams = {**hparams, "log_noise_precision": jnp.asarray(log_beta)}
        params = _newton(lambda w, h=hparams: problem.inner_loss(w, h, *data),
                         problem.init_params(hparams))
        value = float(problem.outer_loss(params, hparams, *data)) * keep.sum()
        alpha = np.exp(np.asarray(hparams["log_alpha"]))
        expected = -_ridge_log_evidence(X[keep], y[keep], alpha, np.exp(log_beta))
        np.testing.assert_allclose(value, expected, rtol=1e-10)


def test_softmax_null_direction_is_dropped_exactly(rng):
    """The log-determinant is that of H without its zero eigenvalue, and the value
    does not move when every class's intercept shifts equally."""
    problem, hparams, data = _setup("multinomial", rng)
    X, y, mask, _ = data
    params = _newton(lambda w: problem.inner_loss(w, hparams, *data),
                     problem.init_params(hparams))
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    alpha = jnp.exp(hparams["log_alpha"])

    def joint(v):
        w = unravel(v)
        data_term = jnp.sum(mask * multinomial_log_loss(linear_scores(w, X), y))
        return data_term + 0.5 * jnp.sum(alpha * coef_squares(w))

    eigenvalues = np.linalg.eigvalsh(np.asarray(jax.hessian(joint)(flat)))
    assert abs(eigenvalues[0]) < 1e-8 * eigenvalues[-1]
    n, free = float(mask.sum()), N_CLASSES - 1
    prior = 0.5 * N_CLASSES * float(hparams["log_alpha"].sum())
    expected = (float(joint(flat)) - prior + 0.5 * np.sum(np.log(eigenvalues[1:]))
                - 0.5 * free * np.log(2 * np.pi))
    value = float(problem.outer_loss(params, hparams, *data)) * n
    np.testing.assert_allclose(value, expected, rtol=1e-10)
    shifted = {**params, "intercept": params["intercept"] + 3.0}
    np.testing.assert_allclose(float(problem.outer_loss(shifted, hparams, *data)),
                               value / n, rtol=1e-10)


@pytest.mark.parametrize("kind", ["binary", "ridge"])
def test_one_feature_optimum_matches_a_fine_scan(kind, rng):
    """Hypergradient descent (L-BFGS-B on the exact gradient) lands on the scan's
    minimum of the negative log evidence over one log strength."""
    problem, hparams, data = _setup(kind, rng, n=60, d=1)
    method = Implicit(CG(maxiter=200), tol=1e-12, max_inner_iter=2000)
    call = jax.jit(lambda h: method(problem, h, data, data))

    def fun(vector):
        result = call({**hparams, "log_alpha": jnp.asarray(vector)})
        return float(result.value), np.asarray(result.grad["log_alpha"])

    found = scipy.optimize.minimize(fun, np.zeros(1), jac=True, method="L-BFGS-B",
                                    bounds=[(-8.0, 8.0)], options={"gtol": 1e-9}).x[0]
    grid = np.linspace(-8.0, 8.0, 1601)
    reference = _evidence_at_minimum(problem, data)
    scan = np.asarray(jax.lax.map(
        lambda v: reference({**hparams, "log_alpha": v[None]}), jnp.asarray(grid)))
    best = grid[np.argmin(scan)]
    assert -7.9 < best < 7.9  # an interior optimum, so the check means something
    assert abs(found - best) <= 0.01


def test_too_many_parameters_raise_naming_the_limit():
    outer = laplace_neg_log_evidence(linear_scores, binary_log_loss, coef_squares,
                                     max_params=10)
    params = {"coef": jnp.zeros(12), "intercept": jnp.zeros(())}
    X, y = jnp.zeros((3, 12)), jnp.zeros(3)
    with pytest.raises(ValueError, match="max_params=10.*validation objective"):
        outer(params, {"log_alpha": jnp.zeros(12)}, X, y, jnp.ones(3))
