"""Label-to-prototype matching (DL2PA, paper Eq. 9), in numpy/scipy.

`solve_assignment` maximises the total cosine between the class
representatives and their prototypes over all permutations, with a dense
(Hungarian) or a sparse solver certified optimal by LP duality. Design
notes: docs/matching.md.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import sparse
from scipy.optimize import linear_sum_assignment
from scipy.sparse.csgraph import min_weight_full_bipartite_matching

from keras_dlpa.checks import check_choice
from keras_dlpa.checks import check_int
from keras_dlpa.checks import check_number

logger = logging.getLogger(__name__)

# Dense for c <= this, sparse above (see benchmarks/bench_reassign.py).
DENSE_MAX_CLASSES = 4096
_METHODS = ("auto", "dense", "sparse")
# Reduced-cost tolerance of the optimality certificate (float64 units).
_DUAL_TOL = 1e-9
# Bytes of float32 similarity processed per block in the sparse solver.
_BLOCK_BYTES = 128 * 2**20
# Added to the sparse edge weights, 3 - S >= 1 (the matcher rejects zero
# weights); a constant shift does not change a perfect matching's optimum.
_WEIGHT_SHIFT = 3.0


class SparseWarmStart:
    """Cache that lets the sparse solver reuse the previous solve's work.

    Pass the same instance to successive `solve_assignment(...,
    warm_start=cache)` calls (e.g. one per epoch). It changes the speed,
    never the result (see docs/matching.md).

    Args:
        refresh_fraction: solve cold (and refill the cache) when more than
            this fraction of the rows must be priced exactly; in `(0, 1]`.

    Example:

    >>> cache = SparseWarmStart()
    >>> w = np.eye(3)
    >>> a, _ = solve_assignment(w[[2, 0, 1]], w, method="sparse",
    ...                         warm_start=cache)
    >>> a
    array([2, 0, 1])
    """

    def __init__(self, refresh_fraction: float = 0.25):
        self.refresh_fraction = check_number(
            "refresh_fraction", refresh_fraction, 0.0, 1.0
        )
        self.clear()

    def clear(self) -> None:
        """Forgets the cached state: the next solve is a cold one."""
        self._state = None
        # For benchmarks and logs: solves that reused the cache or not, and
        # rows priced exactly in the last solve.
        self.warm_solves = self.cold_solves = self.last_priced_rows = 0

    def _lookup(self, w32, k):
        st = self._state
        if st is None or st["k"] != k or not np.array_equal(st["w32"], w32):
            return None
        return st


def solve_assignment(
    representatives: np.ndarray,
    prototypes: np.ndarray,
    current: np.ndarray | None = None,
    method: str = "auto",
    *,
    tie_epsilon: float = 1e-10,
    k: int = 16,
    max_rounds: int = 50,
    warm_start: SparseWarmStart | None = None,
) -> tuple[np.ndarray, float]:
    """Solves the label-to-prototype assignment (paper Eq. 9).

    Finds the permutation `A` minimising `-sum_j q_j . w_{A[j]}`. Ties (up
    to `tie_epsilon` per pair) keep `current`; all-zero representatives
    return exactly `current`. Deterministic.

    Args:
        representatives: `(c, d)` float array `Q` (rows L2-normalised by
            the caller; zero rows allowed).
        prototypes: `(c, d)` float array `W`, unit rows.
        current: optional `(c,)` int permutation, the current assignment,
            kept on ties (`None`: no tie bonus).
        method: `"dense"`, `"sparse"` or `"auto"` (dense for
            `c <= DENSE_MAX_CLASSES`).
        tie_epsilon: similarity bonus of the current pairs, `>= 0`.
        k: sparse only, least number of initial candidates per class.
        max_rounds: sparse only, most pricing rounds; without a certificate
            by then, a warning is logged and the best matching returned.
        warm_start: sparse only, an optional `SparseWarmStart`, updated in
            place.

    Returns:
        `(assignment, cost)`: `(c,)` int64 permutation (class `j` gets
        prototype `assignment[j]`) and the float64 cost
        `-sum_j q_j . w_{assignment[j]}` (without the tie bonus).

    Example:

    >>> w = np.eye(3)
    >>> solve_assignment(w[[2, 0, 1]], w, current=np.arange(3))
    (array([2, 0, 1]), -3.0)
    """
    q, w, cur = _validate(representatives, prototypes, current, method)
    tie_epsilon = check_number("tie_epsilon", tie_epsilon, closed=True)
    k = check_int("k", k)
    if warm_start is not None and not isinstance(warm_start, SparseWarmStart):
        raise ValueError(
            "`warm_start` must be None or a keras_dlpa.matching."
            f"SparseWarmStart. Received: warm_start={warm_start!r}"
        )
    c = q.shape[0]
    if c == 0:
        return np.zeros((0,), dtype=np.int64), 0.0
    if method == "auto":
        method = "dense" if c <= DENSE_MAX_CLASSES else "sparse"
    if method == "dense":
        assignment = _solve_dense(q, w, cur, tie_epsilon)
    else:
        assignment = _solve_sparse(
            q, w, cur, tie_epsilon, k, max_rounds, warm_start
        )
    assignment = _canonical_ties(q, assignment, cur)
    return assignment, matching_cost(q, w, assignment)


def _canonical_ties(q, assignment, cur):
    """Within each group of identical rows of `q` (free to swap), members
    keep their current prototype when it is in the group's set, the others
    get the rest in ascending order: the same optimum whatever the solver."""
    c = q.shape[0]
    if c < 2:
        return assignment
    key = np.ascontiguousarray(q).view(np.dtype((np.void, 8 * q.shape[1])))
    _, inverse, counts = np.unique(
        key.ravel(), return_inverse=True, return_counts=True
    )
    inverse = inverse.ravel()
    dup = np.flatnonzero(counts[inverse] > 1)
    if dup.size == 0:
        return assignment
    out = assignment.copy()
    dup = dup[np.argsort(inverse[dup], kind="stable")]  # by group, then row
    starts = np.flatnonzero(np.r_[True, np.diff(inverse[dup]) != 0])
    for members in np.split(dup, starts[1:]):
        protos = np.sort(assignment[members])
        if cur is not None:
            keep = np.isin(cur[members], protos)
            rest = np.setdiff1d(protos, cur[members[keep]])
            out[members[keep]] = cur[members[keep]]
            out[members[~keep]] = rest
        else:
            out[members] = protos
    return out


def matching_cost(
    representatives: np.ndarray,
    prototypes: np.ndarray,
    assignment: np.ndarray,
) -> float:
    """Returns `-sum_j q_j . w_{assignment[j]}` in float64."""
    q = np.asarray(representatives, dtype=np.float64)
    w = np.asarray(prototypes, dtype=np.float64)
    return -float(np.einsum("ij,ij->", q, w[assignment]))


def _validate(representatives, prototypes, current, method):
    check_choice("method", method, _METHODS)
    arrays = []
    names = ("representatives", "prototypes")
    for name, value in zip(names, (representatives, prototypes)):
        x = np.asarray(value)
        if x.ndim != 2 or x.dtype.kind not in "fiu":
            raise ValueError(
                f"`{name}` must be a 2-D real array (num_classes, dim). "
                f"Received: shape={x.shape}, dtype={x.dtype}"
            )
        x = np.ascontiguousarray(x, dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
        if bad.size:
            raise ValueError(
                f"`{name}` contains NaN or inf at rows {bad[:10].tolist()} "
                "(first 10). All entries must be finite."
            )
        arrays.append(x)
    q, w = arrays
    if q.shape != w.shape:
        raise ValueError(
            "`representatives` and `prototypes` must have the same shape "
            f"(num_classes, dim). Received: representatives.shape={q.shape}, "
            f"prototypes.shape={w.shape}"
        )
    c = q.shape[0]
    if current is None:
        return q, w, None
    cur = np.asarray(current)
    if cur.shape != (c,) or cur.dtype.kind not in "iu":
        raise ValueError(
            f"`current` must be an integer array of shape ({c},), one "
            f"prototype per class. Received: shape={cur.shape}, "
            f"dtype={cur.dtype}"
        )
    cur = cur.astype(np.int64)
    in_range = (cur >= 0) & (cur < c)
    if not in_range.all() or np.bincount(cur, minlength=c).max() > 1:
        out = int((~in_range).sum())
        raise ValueError(
            f"`current` must be a permutation of range({c}). Received "
            f"{out} out-of-range and {c - np.unique(cur[in_range]).size - out}"
            f" duplicated entries: {cur[:10].tolist()}..."
        )
    return q, w, cur


def _solve_dense(q, w, cur, eps):
    cost = q @ w.T
    np.negative(cost, out=cost)
    if cur is not None and eps > 0:
        cost[np.arange(q.shape[0]), cur] -= eps
    _, col = linear_sum_assignment(cost)
    return col.astype(np.int64)


def _blocks(c, row_bytes):
    step = max(1, min(c, _BLOCK_BYTES // max(1, row_bytes)))
    for start in range(0, c, step):
        yield start, min(c, start + step)


def _exact_sim(q, w, rows, cols):
    """Float64 `q[rows] . w[cols]` for edge lists, chunked for memory."""
    out = np.empty(rows.shape[0], dtype=np.float64)
    chunk = max(1, 2**20 // q.shape[1])
    for s in range(0, rows.shape[0], chunk):
        e = slice(s, s + chunk)
        out[e] = np.einsum("ij,ij->i", q[rows[e]], w[cols[e]])
    return out


def _top_k_candidates(q32, w32, k):
    """At least `k` (the top-`k` included) candidate prototypes per class.

    Cheaper than `argpartition`: the smallest of the maxima of `k` column
    groups is a threshold with at least `k` similarities above it; rows
    with more than `4 k` survivors (ties) fall back to an exact top-`k`.
    Returns the candidate edges and `tau`, a float32 bound on every row's
    non-candidate similarities.
    """
    c = q32.shape[0]
    k = min(k, c)
    g = c // k
    rows, cols = [], []
    tau = np.empty(c, dtype=np.float64)
    for s, e in _blocks(c, 4 * c):
        sim = q32[s:e] @ w32.T
        n = e - s
        t = sim[:, : g * k].reshape(n, k, g).max(axis=2).min(axis=1)
        mask = sim >= t[:, None]
        tau[s:e] = t
        crowded = np.flatnonzero(mask.sum(axis=1) > 4 * k)
        mask[crowded] = False
        flat = np.flatnonzero(mask)
        rows.append(flat // c + s)
        cols.append(flat % c)
        if crowded.size:
            top = sim[crowded]
            idx = np.argpartition(top, c - k, axis=1)[:, c - k :]
            tau[crowded + s] = np.take_along_axis(top, idx, 1).min(axis=1)
            rows.append(np.repeat(crowded + s, k))
            cols.append(idx.reshape(-1))
    return np.concatenate(rows), np.concatenate(cols), tau


def _dual_potentials(rows, cols, weight, match):
    """Dual potentials `(u, v)` with `u_i + v_k <= C_ik` on the candidates.

    With `v_k = p_k` and `u_i = C_{i,m(i)} - p_{m(i)}` (`m = match`, optimal
    on the candidate graph), feasibility is `p_k <= p_{m(i)} + C_ik -
    C_{i,m(i)}`: shortest paths on the column graph (no negative cycle as
    the matching is optimal), by vectorised Bellman-Ford.
    """
    c = match.shape[0]
    matched_w = np.empty(c, dtype=np.float64)
    is_match = cols == match[rows]
    matched_w[rows[is_match]] = weight[is_match]
    keep = ~is_match
    src, dst = match[rows[keep]], cols[keep]
    length = weight[keep] - matched_w[rows[keep]]
    p = np.zeros(c, dtype=np.float64)
    if dst.size == 0:
        return matched_w, p
    order = np.argsort(dst, kind="stable")
    src, dst, length = src[order], dst[order], length[order]
    starts = np.flatnonzero(np.r_[True, dst[1:] != dst[:-1]])
    targets = dst[starts]
    for _ in range(c + 1):
        best = np.minimum.reduceat(p[src] + length, starts)
        improve = best < p[targets] - 1e-13
        if not improve.any():
            break
        p[targets[improve]] = best[improve]
    else:
        logger.warning("Dual potentials did not converge; certificate weak.")
    return matched_w - p[match], p


def _price(q32, w32, q, w, u, v, cand_csr, check, k, margin):
    """Non-candidate pairs of the rows `check` with negative reduced cost
    `-S_ik - u_i - v_k`: `(rows, cols, sims)`, and each checked row's
    largest float32 non-candidate similarity (a tighter `tau`)."""
    c = q.shape[0]
    v32 = v.astype(np.float32)
    thr = (-u).astype(np.float32)
    new_rows, new_cols = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    new_sims = [np.zeros(0)]
    row_max = np.empty(check.size, dtype=np.float64)
    for s, e in _blocks(check.size, 4 * c):
        blk = check[s:e]
        t = q32[blk] @ w32.T
        sub = cand_csr[blk]
        hit = np.repeat(np.arange(e - s), np.diff(sub.indptr))
        t[hit, sub.indices] = -np.inf
        row_max[s:e] = t.max(axis=1)
        t += v32
        flagged = np.flatnonzero(t.max(axis=1) > thr[blk] - margin)
        if flagged.size == 0:
            continue
        tf = t[flagged]
        m = min(k, c)
        idx = np.argpartition(tf, c - m, axis=1)[:, c - m :]
        r, cl = np.repeat(blk[flagged], m), idx.reshape(-1)
        ok = np.isfinite(tf[np.repeat(np.arange(flagged.size), m), cl])
        r, cl = r[ok], cl[ok]
        sim = _exact_sim(q, w, r, cl)
        bad = -sim - u[r] - v[cl] < -_DUAL_TOL
        new_rows.append(r[bad])
        new_cols.append(cl[bad])
        new_sims.append(sim[bad])
    logger.debug("priced %d of %d rows", check.size, c)
    return (*map(np.concatenate, (new_rows, new_cols, new_sims)), row_max)


def _solve_sparse(q, w, cur, eps, k, max_rounds, warm=None):
    c, d = q.shape
    anchor = cur if cur is not None else np.arange(c, dtype=np.int64)
    q32, w32 = q.astype(np.float32), w.astype(np.float32)
    # Rigorous float32 dot-product error bound (gamma_d), doubled.
    scale = float(np.abs(q).sum(1).max() * np.abs(w).max())
    margin = np.float32(2.0 * (d + 2) * 2.0**-24 * max(scale, 1.0) + 1e-6)
    state = warm._lookup(w32, k) if warm is not None else None
    if state is not None:
        # |(q_i - q_ref_i) . w_k| <= ||q_i - q_ref_i|| max_k ||w_k||.
        w_norm = float(np.sqrt((w * w).sum(1).max()))
        shift = np.sqrt(((q - state["q_ref"]) ** 2).sum(1)) * w_norm
        tau = state["tau_ref"] + shift * (1.0 + 1e-6) + float(margin)
        rows, cols = state["rows"], state["cols"]
        q_ref, tau_ref = state["q_ref"].copy(), state["tau_ref"].copy()
    else:
        rows, cols, tau = _top_k_candidates(q32, w32, k)
        q_ref, tau_ref = q.copy(), tau
    keys = np.unique(
        np.concatenate([rows * c + cols, np.arange(c) * c + anchor])
    )
    rows, cols = keys // c, keys % c
    sims = _exact_sim(q, w, rows, cols)
    bonus = np.zeros_like(sims)
    if cur is not None and eps > 0:
        bonus[cols == cur[rows]] = eps
    match, priced = anchor, 0
    for round_ in range(max_rounds):
        cost = -sims - bonus
        graph = sparse.csr_array(
            (cost + _WEIGHT_SHIFT, (rows, cols)), shape=(c, c)
        )
        _, match = min_weight_full_bipartite_matching(graph)
        match = match.astype(np.int64)
        u, v = _dual_potentials(rows, cols, cost, match)
        check = np.flatnonzero(tau + v.max() + margin > -u)
        if state is not None and check.size > warm.refresh_fraction * c:
            # The cache proves too little: start again cold (and refill).
            logger.debug("warm start stale: %d rows to price", check.size)
            warm._state = None
            return _solve_sparse(q, w, cur, eps, k, max_rounds, warm)
        priced = max(priced, check.size)
        cand = sparse.csr_array(
            (np.ones(rows.size, np.int8), (rows, cols)), shape=(c, c)
        )
        new_rows, new_cols, new_sims, row_max = _price(
            q32, w32, q, w, u, v, cand, check, k, margin
        )
        # Priced rows get an exact bound for the current representatives
        # (still valid after the new candidates join): refresh the cache.
        tau[check] = tau_ref[check] = row_max
        q_ref[check] = q[check]
        logger.debug(
            "sparse round %d: %d edges, %d violations",
            round_,
            rows.size,
            new_rows.size,
        )
        if new_rows.size == 0:
            if warm is not None:
                warm._state = dict(w32=w32, k=k, q_ref=q_ref, tau_ref=tau_ref)
                warm._state.update(rows=rows, cols=cols)
                warm.last_priced_rows = priced
                warm.warm_solves += int(state is not None)
                warm.cold_solves += int(state is None)
            return match
        # Priced pairs are never candidates yet, and never current pairs.
        rows = np.concatenate([rows, new_rows])
        cols = np.concatenate([cols, new_cols])
        sims = np.concatenate([sims, new_sims])
        bonus = np.concatenate([bonus, np.zeros_like(new_sims)])
    logger.warning(
        "Sparse matching not certified optimal after %d rounds; returning "
        "the best matching on the candidate graph.",
        max_rounds,
    )
    if warm is not None:
        warm._state = None
    return match
