"""Hyperspherical prototype estimation (DL2PA, Sec. 3.2.1, Eq. 3-5).

Numpy with analytic gradients: backend independent and deterministic.
Design notes and measurements: docs/prototypes.md.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time

import numpy as np

from keras_dlpa.checks import check_choice
from keras_dlpa.checks import check_int
from keras_dlpa.checks import check_number

logger = logging.getLogger(__name__)

METHODS = ("auto", "uniformity", "etf")
PAIRS = ("subset", "all")
OPTIMIZERS = ("auto", "reference", "adam")
# Bump when a change to the optimiser changes its output: old cache
# entries then miss instead of returning stale prototypes.
ALGORITHM_VERSION = 3
# optimizer="auto": "reference" while c^2 d is at most this, "adam" above.
REFERENCE_MAX_WORK = 10**7
# Full-batch Adam: temperature ramp (geometric), peak learning rate, steps.
ADAM_TEMPERATURES = (10.0, 100.0)
ADAM_LEARNING_RATE = 0.05
ADAM_STEPS = 200
# Rows per Gram strip of the Adam gradient: a 1024 c float buffer, and BLAS
# calls large enough for two threads (256 rows: up to 3x slower).
ADAM_BLOCK_ROWS = 1024
# Stage-2 temperatures: t = 2 (the paper's objective) up to 500, where the
# scaled loss is within ~0.01 of the maximum pairwise cosine.
REFINE_TEMPERATURES = (2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0)


def _resolve_method(num_classes, dim, method):
    check_choice("method", method, METHODS)
    if method == "auto":
        return "etf" if dim >= num_classes - 1 else "uniformity"
    if method == "etf" and dim < num_classes - 1:
        raise ValueError(
            f"method='etf' needs dim >= num_classes - 1, but received "
            f"num_classes={num_classes} and dim={dim} (needs dim >= "
            f"{num_classes - 1}). Use method='uniformity' or 'auto'."
        )
    return method


def _resolve_optimizer(num_classes, dim, optimizer):
    if optimizer != "auto":
        return optimizer
    small = num_classes * num_classes * dim <= REFERENCE_MAX_WORK
    return "reference" if small else "adam"


def _check_sizes(num_classes, dim, seed):
    return (
        check_int("num_classes", num_classes, 2),
        check_int("dim", dim, 1),
        check_int("seed", seed, 0),
    )


def _check_options(options):
    if options is None or isinstance(options, EstimationOptions):
        return options or EstimationOptions()
    raise ValueError(
        "`options` must be an `EstimationOptions` or None. "
        f"Received: options={options!r}"
    )


def _since(start):
    return time.perf_counter() - start


def _unit_rows(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@dataclasses.dataclass(frozen=True)
class EstimationOptions:
    """Optimiser settings of `estimate_prototypes` (`method="uniformity"`).

    Validated on construction. `steps` to `refine_iterations` apply to
    `optimizer="reference"`, `adam_steps` to `optimizer="adam"`.

    Args:
        steps: SGD passes over the prototypes (stage 1).
        subset_size: prototypes per SGD step (`c-hat`).
        temperature: `t > 0` of the Gaussian potential in stage 1.
        learning_rate: plain SGD learning rate.
        pairs: `"subset"` or `"all"`, see `uniformity_loss`.
        refine_temperatures: L-BFGS temperatures of stage 2, in order.
        refine_iterations: L-BFGS iterations per temperature (0: none).
        optimizer: `"auto"`, `"reference"` or `"adam"`.
        adam_steps: full-batch Adam steps, each about `1.5 c^2 d`
            multiply-adds.

    Example:

    >>> options = EstimationOptions(steps=200, refine_iterations=0)
    >>> w = estimate_prototypes(30, 6, "uniformity", options=options)
    """

    steps: int = 1000
    subset_size: int = 100
    temperature: float = 2.0
    learning_rate: float = 0.1
    pairs: str = "subset"
    refine_temperatures: tuple = REFINE_TEMPERATURES
    refine_iterations: int = 100
    optimizer: str = "auto"
    adam_steps: int = ADAM_STEPS

    def __post_init__(self):
        temps = self.refine_temperatures
        if isinstance(temps, (str, bytes)) or not hasattr(temps, "__iter__"):
            raise ValueError(
                "`refine_temperatures` must be a sequence of positive "
                f"numbers. Received: refine_temperatures={temps!r}"
            )
        checked = {
            "steps": check_int("steps", self.steps, 0),
            "subset_size": check_int("subset_size", self.subset_size, 2),
            "temperature": check_number("temperature", self.temperature),
            "learning_rate": check_number("learning_rate", self.learning_rate),
            "pairs": check_choice("pairs", self.pairs, PAIRS),
            "refine_temperatures": tuple(
                check_number("refine_temperatures", t) for t in temps
            ),
            "refine_iterations": check_int(
                "refine_iterations", self.refine_iterations, 0
            ),
            "optimizer": check_choice("optimizer", self.optimizer, OPTIMIZERS),
            "adam_steps": check_int("adam_steps", self.adam_steps),
        }
        for name, value in checked.items():
            object.__setattr__(self, name, value)


def simplex_etf(num_classes: int, dim: int, seed: int = 0) -> np.ndarray:
    """The simplex equiangular tight frame: `num_classes` unit rows in `dim`.

    Every pair has cosine exactly `-1 / (num_classes - 1)`.

    Args:
        num_classes: `c >= 2`.
        dim: `d >= c - 1`.
        seed: seed of the random orthonormal embedding into `d` dimensions.

    Returns:
        float32 array `(num_classes, dim)` with unit rows.
    """
    c, d, seed = _check_sizes(num_classes, dim, seed)
    _resolve_method(c, d, "etf")
    gram = (np.eye(c) - np.full((c, c), 1.0 / c)) * (c / (c - 1))
    eigval, eigvec = np.linalg.eigh(gram)
    # eigh sorts ascending: the single zero eigenvalue comes first.
    basis = eigvec[:, 1:] * np.sqrt(eigval[1:])  # (c, c - 1)
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.standard_normal((d, c - 1)))
    q = q * np.sign(np.diag(r))  # Haar-distributed, sign-stable
    return _unit_rows(basis @ q.T).astype(np.float32)


def uniformity_loss(
    raw: np.ndarray,
    index: np.ndarray | None = None,
    temperature: float = 2.0,
    pairs: str = "subset",
) -> tuple[float, np.ndarray]:
    """Gaussian-potential uniformity loss and its analytic gradient.

    With `u = raw / ||raw||` (rows) and `G_ij = exp(2t (u_i . u_j - 1))`:
    `pairs="subset"` is `log mean_{i<j in S} G_ij` (reference code),
    `pairs="all"` is `log (1 / (|S| c) sum_{i in S} sum_j G_ij)` (Eq. 5).

    Args:
        raw: float array `(c, d)`, the unnormalised parameter.
        index: int array `(m,)` of subset rows `S` (all rows if `None`).
        temperature: `t > 0`.
        pairs: `"subset"` or `"all"`.

    Returns:
        `(loss, grad)`, `grad` of shape `(c, d)` (zero outside `S` for
        `pairs="subset"`).
    """
    t = check_number("temperature", temperature)
    check_choice("pairs", pairs, PAIRS)
    raw = np.asarray(raw, dtype=np.float64)
    index = np.arange(raw.shape[0]) if index is None else np.asarray(index)
    loss, grad_rows, rows = _loss_and_grad(raw, index, t, pairs)
    grad = np.zeros_like(raw)
    grad[rows] = grad_rows
    return loss, grad


def _project(du, u, norms):
    """Chain rule through `u = v / ||v||`: `(I - u u^T) du / ||v||`."""
    radial = np.einsum("ij,ij->i", du, u)[:, None]
    return (du - u * radial) / norms


def _loss_and_grad(raw, index, t, pairs):
    """Returns `(loss, grad, rows)`: the gradient of `raw[rows]`."""
    m = len(index)
    v = raw[index]
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    u = v / norms
    if pairs == "subset":
        a = (2.0 * t) * (u @ u.T - 1.0)
        np.fill_diagonal(a, -np.inf)
        shift = a.max()  # log-sum-exp shift: no underflow at large t
        g = np.exp(a - shift)
        s = g.sum()  # both orders: 2 sum_{i<j}
        loss = shift + math.log(s / (m * (m - 1)))
        du = (4.0 * t / s) * (g @ u)
        return loss, _project(du, u, norms), index
    all_norms = np.linalg.norm(raw, axis=1, keepdims=True)
    all_u = raw / all_norms
    # No log-sum-exp shift needed: the self terms exp(0) = 1 dominate.
    g = np.exp((2.0 * t) * (u @ all_u.T - 1.0))  # (m, c)
    g[np.arange(m), index] = 0.0  # self terms: the constant 1
    s = g.sum() + m
    loss = math.log(s / (m * raw.shape[0]))
    du_all = g.T @ u  # as the j of pair (i, j)
    du_all[index] += g @ all_u  # as the i of pair (i, j)
    du_all *= 2.0 * t / s
    return loss, _project(du_all, all_u, all_norms), slice(None)


def _sgd_passes(raw, rng, options, verbose):
    """Plain SGD over shuffled subsets; updates `raw` in place."""
    passes, subset_size = options.steps, options.subset_size
    t, pairs = options.temperature, options.pairs
    lr = np.float32(options.learning_rate)
    c = raw.shape[0]
    steps = math.ceil(c / subset_size)
    log_every = max(1, passes // 10)
    start = time.perf_counter()
    for epoch in range(passes):
        order = rng.permutation(c)
        total = 0.0
        for k in range(steps):
            index = order[k * subset_size : (k + 1) * subset_size]
            if len(index) < 2:
                continue
            loss, grad, rows = _loss_and_grad(raw, index, t, pairs)
            raw[rows] -= lr * grad
            total += loss
        if verbose and ((epoch + 1) % log_every == 0 or epoch == 0):
            args = (epoch + 1, passes, total / steps, _since(start))
            logger.info("sgd pass %d/%d  loss %.6f  %.1fs", *args)


def _strips(c, block_size):
    """Row strips `[start, stop)` of at most `block_size` rows."""
    return [(i, min(i + block_size, c)) for i in range(0, c, block_size)]


def _full_loss_and_grad(raw, t, block_size=1024):
    """`uniformity_loss` over all pairs, in row blocks, scaled by `1 / (2t)`
    (so it tends to `max cos - 1` as `t` grows)."""
    c, norms = raw.shape[0], np.linalg.norm(raw, axis=1, keepdims=True)
    u = raw / norms
    du = np.empty_like(u)
    shifts, sums = [], []
    for start, stop in _strips(c, block_size):
        a = (2.0 * t) * (u[start:stop] @ u.T - 1.0)
        rows = np.arange(stop - start)
        a[rows, rows + start] = -np.inf
        shift = a.max()
        g = np.exp(a - shift, out=a)
        shifts.append(shift)
        sums.append(g.sum())
        du[start:stop] = g @ u
    top = max(shifts)
    s = 0.0
    for shift, total, (start, stop) in zip(
        shifts, sums, _strips(c, block_size)
    ):
        scale = math.exp(shift - top)
        s += total * scale
        du[start:stop] *= scale
    loss = (top + math.log(s / (c * (c - 1)))) / (2.0 * t)
    du *= 2.0 / s
    return loss, _project(du, u, norms)


def _refine(raw, temperatures, iterations, verbose):
    """Full-batch L-BFGS on the same loss along a temperature schedule."""
    from scipy.optimize import minimize

    shape = raw.shape
    start = time.perf_counter()
    for t in temperatures:
        result = minimize(
            lambda x, t=t: _full_loss_and_grad(x.reshape(shape), t),
            raw.ravel(),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": iterations},
        )
        raw = _unit_rows(result.x.reshape(shape))
        if verbose:
            args = (t, result.nit, result.fun, _since(start))
            logger.info("refine t=%g  %d iterations  loss %.6f  %.1fs", *args)
    return raw


def _upper_strips(c, block_size, work):
    """Yields `(i0, i1, a)`: a row strip and a `(i1 - i0, c - i0)` view of
    the float32 buffer `work` (allocated when None) for its pairs `j >= i0`."""
    if work is None:
        work = np.empty(min(block_size, c) * c, np.float32)
    for i0, i1 in _strips(c, block_size):
        yield i0, i1, work[: (i1 - i0) * (c - i0)].reshape(i1 - i0, c - i0)


def _adam_block_grad(u, t, block_size, out=None, work=None):
    """Tangent gradient of `log mean_{i != j} exp(2t (u_i . u_j - 1))`.

    Float32, over strips of the upper triangle of the Gram matrix (see
    docs/prototypes.md); `out` and `work` are optional reused buffers.

    Returns:
        `(grad, max_cos)`: the gradient w.r.t. the unit rows `u`, projected
        on their tangent spaces (up to a positive factor), float32 `(c, d)`;
        and the max pairwise cosine of `u`.
    """
    c = u.shape[0]
    du = np.zeros_like(u) if out is None else out
    du.fill(0.0)
    scaled = u * np.float32(2.0 * t)
    top, total = -np.inf, 0.0
    for i0, i1, a in _upper_strips(c, block_size, work):
        n = i1 - i0
        np.matmul(scaled[i0:i1], u[i0:].T, out=a)  # 2t cos, pairs j >= i0
        np.fill_diagonal(a, -np.inf)  # the first n columns are rows i0:i1
        shift = float(a.max())
        if shift > top:
            if top > -np.inf:  # rescale what was summed with the old shift
                factor = math.exp(top - shift)
                du *= np.float32(factor)
                total *= factor
            top = shift
        a -= np.float32(top)
        np.exp(a, out=a)
        # Pairs inside the strip appear in both orders in a[:, :n]; pairs
        # with later rows once, in a[:, n:]: count them twice.
        total += float(a[:, :n].sum(dtype=np.float64))
        total += 2.0 * float(a[:, n:].sum(dtype=np.float64))
        du[i0:i1] += a @ u[i0:]
        if i1 < c:
            du[i1:] += a[:, n:].T @ u[i0:i1]
    du *= np.float32(1.0 / total)
    du -= u * np.einsum("ij,ij->i", du, u)[:, None]
    return du, top / (2.0 * t)


def _max_cosine(u, block_size, work=None):
    """Max pairwise cosine of unit rows `u`."""
    top = -np.inf
    for i0, i1, a in _upper_strips(u.shape[0], block_size, work):
        np.matmul(u[i0:i1], u[i0:].T, out=a)
        np.fill_diagonal(a, -np.inf)
        top = max(top, float(a.max()))
    return top


def _adam(
    u, steps, temperatures, learning_rate, verbose, block_size=ADAM_BLOCK_ROWS
):
    """Full-batch Adam on the unit sphere, updating `u` (float32 `(c, d)`)
    in place with buffers allocated once; returns the best iterate."""
    t0, t1 = temperatures
    c = u.shape[0]
    b1, b2 = 0.9, 0.999
    m, v = np.zeros_like(u), np.zeros_like(u)
    g, tmp = np.empty_like(u), np.empty_like(u)
    work = np.empty(min(block_size, c) * c, np.float32)
    best, best_cos = u.copy(), np.inf
    start = time.perf_counter()
    for i in range(steps):
        frac = i / max(1, steps - 1)
        t = t0 * (t1 / t0) ** frac
        _, top_cos = _adam_block_grad(u, t, block_size, out=g, work=work)
        if top_cos < best_cos:
            np.copyto(best, u)
            best_cos = top_cos
        # m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
        m *= np.float32(b1)
        np.multiply(g, np.float32(1 - b1), out=tmp)
        m += tmp
        v *= np.float32(b2)
        np.multiply(g, g, out=tmp)
        tmp *= np.float32(1 - b2)
        v += tmp
        # u -= lr_k m / (sqrt(v / (1 - b2^k)) + eps), bias-corrected
        lr = learning_rate * 0.5 * (1.0 + math.cos(math.pi * frac))
        step = np.float32(lr / (1 - b1 ** (i + 1)))
        np.sqrt(v, out=tmp)
        tmp *= np.float32(1.0 / math.sqrt(1 - b2 ** (i + 1)))
        tmp += np.float32(1e-8)  # rows without pressure stay put
        np.divide(m, tmp, out=tmp)
        tmp *= step
        u -= tmp
        u /= np.sqrt(np.einsum("ij,ij->i", u, u))[:, None]
        if verbose and (i % max(1, steps // 10) == 0 or i == steps - 1):
            args = (i + 1, steps, t, top_cos, _since(start))
            logger.info("adam step %d/%d  t=%.1f  max cos %.5f  %.1fs", *args)
    if _max_cosine(u, block_size, work) < best_cos:
        best = u
    return best


def estimate_prototypes(
    num_classes: int,
    dim: int,
    method: str = "auto",
    seed: int = 0,
    options: EstimationOptions | None = None,
    verbose: bool = False,
) -> np.ndarray:
    """Estimates `num_classes` unit prototypes in `dim` dimensions.

    `"uniformity"` minimises the Gaussian-potential loss with
    `options.optimizer`: `"reference"` (SGD over subsets, then L-BFGS along
    `refine_temperatures`), `"adam"` (full-batch Adam over all pairs) or
    `"auto"` (`"reference"` while `c^2 d <= REFERENCE_MAX_WORK`). See
    docs/prototypes.md.

    Args:
        num_classes: `c >= 2`.
        dim: `d >= 1`.
        method: `"auto"` (ETF when `d >= c - 1`, else uniformity),
            `"uniformity"` or `"etf"` (see `simplex_etf`).
        seed: seed of the initialisation, subsets and embeddings.
        options: an `EstimationOptions` (default: `EstimationOptions()`).
        verbose: log progress at INFO.

    Returns:
        float32 array `(num_classes, dim)` with unit rows; the same
        arguments give bit-identical output.

    Example:

    >>> estimate_prototypes(100, 50, seed=0).shape
    (100, 50)
    """
    c, d, seed = _check_sizes(num_classes, dim, seed)
    options = _check_options(options)
    if _resolve_method(c, d, method) == "etf":
        return simplex_etf(c, d, seed=seed)
    rng = np.random.default_rng(seed)
    if _resolve_optimizer(c, d, options.optimizer) == "adam":
        u = _unit_rows(rng.standard_normal((c, d))).astype(np.float32)
        steps, temps = options.adam_steps, ADAM_TEMPERATURES
        w = _adam(u, steps, temps, ADAM_LEARNING_RATE, verbose)
        return _unit_rows(w.astype(np.float64)).astype(np.float32)
    # float32 for SGD: 2-4x faster, and SGD noise dwarfs rounding.
    raw = _unit_rows(rng.uniform(-1.0, 1.0, size=(c, d))).astype(np.float32)
    _sgd_passes(raw, rng, options, verbose)
    raw = _unit_rows(raw.astype(np.float64))
    if options.refine_iterations > 0:
        raw = _refine(
            raw, options.refine_temperatures, options.refine_iterations, verbose
        )
    return _unit_rows(raw).astype(np.float32)


def prototype_quality(prototypes, block_size: int = 2048) -> dict:
    """Min, max and mean pairwise cosine (`i != j`) of the rows.

    Rows are normalised first; memory is `O(block_size * c)`.

    Args:
        prototypes: array `(c, d)`, `c >= 2`.
        block_size: rows per block.

    Returns:
        dict with float `"min"`, `"max"` and `"mean"` cosines.
    """
    p = np.asarray(prototypes, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < 2:
        raise ValueError(
            "`prototypes` must be a 2-D array (num_classes >= 2, dim). "
            f"Received: shape={p.shape}"
        )
    p, c = _unit_rows(p), p.shape[0]
    lo, hi, total = np.inf, -np.inf, 0.0
    for start in range(0, c, block_size):
        cos = p[start : start + block_size] @ p.T
        rows = np.arange(cos.shape[0])
        total += cos.sum() - cos[rows, rows + start].sum()
        cos[rows, rows + start] = np.nan
        lo = min(lo, np.nanmin(cos))
        hi = max(hi, np.nanmax(cos))
    mean = total / (c * (c - 1))
    return {"min": float(lo), "max": float(hi), "mean": float(mean)}
