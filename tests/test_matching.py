import itertools

import numpy as np
import pytest

from keras_dlpa.matching import SparseWarmStart
from keras_dlpa.matching import solve_assignment

# Not `core`: numpy/scipy only, nothing here depends on the Keras backend,
# so the JAX run (tests/test_jax_backend.py) would only repeat it.

METHODS = ("dense", "sparse")


def _unit_rows(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _problem(c, d, seed, noise=None):
    """Unit prototypes W, a planted permutation and representatives Q."""
    rng = np.random.default_rng(seed)
    w = _unit_rows(rng.standard_normal((c, d)))
    perm = rng.permutation(c)
    if noise is None:
        q = _unit_rows(rng.standard_normal((c, d)))
    else:
        q = _unit_rows(w[perm] + noise * rng.standard_normal((c, d)))
    return q, w, perm


def _brute_force(q, w):
    """All permutations: (sorted costs, best permutation)."""
    sim = q @ w.T
    c = q.shape[0]
    perms = np.array(list(itertools.permutations(range(c))))
    costs = -sim[np.arange(c), perms].sum(axis=1)
    order = np.argsort(costs, kind="stable")
    return costs[order], perms[order[0]]


def _is_permutation(a, c):
    return a.dtype == np.int64 and np.array_equal(np.sort(a), np.arange(c))


@pytest.mark.parametrize("method", METHODS)
def test_equals_brute_force(method):
    # Loops instead of parametrisation: the conftest teardown is per test.
    for c, seed in itertools.product([1, 2, 3, 5, 7], [0, 1, 2]):
        q, w, _ = _problem(c, 4, seed)
        costs, best = _brute_force(q, w)
        assignment, cost = solve_assignment(q, w, method=method)
        assert _is_permutation(assignment, c)
        np.testing.assert_allclose(cost, costs[0], rtol=0, atol=1e-9)
        # The returned cost is the true cost of the returned assignment.
        np.testing.assert_allclose(
            cost, -np.sum(q * w[assignment]), rtol=0, atol=1e-12
        )
        if c > 1 and costs[1] - costs[0] > 1e-6:  # unique optimum
            np.testing.assert_array_equal(assignment, best)


@pytest.mark.parametrize("method", METHODS)
def test_brute_force_with_current_and_zero_rows(method):
    rng = np.random.default_rng(7)
    for seed in range(4):
        q, w, _ = _problem(6, 3, seed)
        q[rng.choice(6, 2, replace=False)] = 0.0  # classes never seen
        current = rng.permutation(6)
        costs, _ = _brute_force(q, w)
        assignment, cost = solve_assignment(q, w, current, method=method)
        assert _is_permutation(assignment, 6)
        np.testing.assert_allclose(cost, costs[0], rtol=0, atol=1e-9)


@pytest.mark.parametrize("method", METHODS)
def test_planted_permutation_recovered(method):
    q, w, perm = _problem(300, 64, seed=3, noise=0.05)
    current = np.random.default_rng(0).permutation(300)
    assignment, cost = solve_assignment(q, w, current, method=method)
    np.testing.assert_array_equal(assignment, perm)
    np.testing.assert_allclose(cost, -np.sum(q * w[perm]), atol=1e-9)


@pytest.mark.parametrize("method", METHODS)
def test_zero_statistics_keep_current(method):
    for c in (1, 5, 300):
        _check_zero_statistics(method, c)


def _check_zero_statistics(method, c):
    w = _unit_rows(np.random.default_rng(c).standard_normal((c, 16)))
    current = np.random.default_rng(c + 1).permutation(c)
    assignment, cost = solve_assignment(
        np.zeros((c, 16)), w, current, method=method
    )
    np.testing.assert_array_equal(assignment, current)
    assert cost == 0.0


@pytest.mark.parametrize("method", METHODS)
def test_ties_keep_current(method):
    # Classes 0 and 1 have identical representatives halfway between
    # prototypes 0 and 1: both pairings are optimal, so `current` decides.
    w = np.eye(4)
    q = np.eye(4)
    q[0] = q[1] = np.array([1.0, 1.0, 0.0, 0.0]) / np.sqrt(2.0)
    for current in ([0, 1, 2, 3], [1, 0, 2, 3]):
        assignment, cost = solve_assignment(q, w, np.array(current), method)
        np.testing.assert_array_equal(assignment, current)
        np.testing.assert_allclose(cost, -(np.sqrt(2.0) + 2.0), atol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_duplicated_rows_deterministic(method):
    q, w, _ = _problem(40, 8, seed=5)
    q[10:20] = q[0]  # 11 identical representatives: many tied optima
    results = [solve_assignment(q, w, method=method) for _ in range(3)]
    for assignment, cost in results[1:]:
        np.testing.assert_array_equal(assignment, results[0][0])
        assert cost == results[0][1]
    current = np.random.default_rng(1).permutation(40)
    first = solve_assignment(q, w, current, method=method)[0]
    again = solve_assignment(q.copy(), w.copy(), current.copy(), method)[0]
    np.testing.assert_array_equal(first, again)


@pytest.mark.parametrize(
    "c, noise, k", [(1500, 0.5 / 8, 16), (400, None, 4), (300, None, 1)]
)
def test_sparse_equals_dense(c, noise, k):
    # Near-converged (Q = permuted W + noise) and random statistics: the
    # sparse solver's duality certificate makes it exact in both cases.
    q, w, _ = _problem(c, 64, seed=11, noise=noise)
    current = np.random.default_rng(2).permutation(c)
    dense, dense_cost = solve_assignment(q, w, current, "dense")
    sparse, sparse_cost = solve_assignment(q, w, current, "sparse", k=k)
    assert _is_permutation(sparse, c)
    np.testing.assert_allclose(sparse_cost, dense_cost, rtol=0, atol=1e-7)
    if noise is not None:
        np.testing.assert_array_equal(sparse, dense)


def test_auto_and_input_dtypes():
    q, w, perm = _problem(50, 8, seed=9, noise=0.01)
    assignment, _ = solve_assignment(
        q.astype(np.float32), w.astype(np.float32), np.arange(50, dtype="i4")
    )
    np.testing.assert_array_equal(assignment, perm)


def test_empty():
    assignment, cost = solve_assignment(np.zeros((0, 3)), np.zeros((0, 3)))
    assert assignment.shape == (0,) and cost == 0.0


ERROR_CASES = [
    (dict(representatives=np.zeros((3, 2))), r"\(3, 2\).*\(4, 2\)"),
    (dict(representatives=np.zeros(4)), "representatives.*2-D"),
    (dict(prototypes=np.zeros((4, 2, 1))), "prototypes.*2-D"),
    (dict(current=np.array([0, 1, 1, 3])), "permutation of range"),
    (dict(current=np.array([0, 1, 2, 4])), "permutation of range"),
    (dict(current=np.array([0, 1, 2])), r"current.*shape \(4,\)"),
    (dict(current=np.arange(4.0)), "current.*integer"),
    (dict(method="hungarian"), "method.*hungarian"),
    (dict(tie_epsilon=-1.0), "tie_epsilon"),
    (dict(k=0), "`k`"),
]


def test_errors():
    for kwargs, match in ERROR_CASES:
        args = dict(
            representatives=np.eye(4, 2),
            prototypes=np.eye(4, 2),
            current=np.arange(4),
        )
        args.update(kwargs)
        with pytest.raises(ValueError, match=match):
            solve_assignment(**args)


def test_non_finite():
    for bad, name in itertools.product(
        [np.nan, np.inf], ["representatives", "prototypes"]
    ):
        args = dict(representatives=np.eye(4, 2), prototypes=np.eye(4, 2))
        args[name] = args[name].copy()
        args[name][2, 1] = bad
        with pytest.raises(ValueError, match=f"{name}.*NaN or inf.*\\[2\\]"):
            solve_assignment(**args)


def _dense_optimum(q, w):
    from scipy.optimize import linear_sum_assignment

    _, col = linear_sum_assignment(-(q @ w.T))
    return -float(np.sum(q * w[col]))


def test_warm_start_equals_cold_and_dense():
    # Epochs of near-converged statistics that drift a little; some pairs
    # of classes (i, j) turn towards each other's prototype (a, b): still
    # 0.6 to their own, now 0.8 to the other's, which was no candidate of
    # theirs. Only the ||q - q_ref|| bound tells the solver to re-price
    # those rows. Warm = cold = dense optimum.
    c, d = 2000, 32
    rng = np.random.default_rng(4)
    w = _unit_rows(rng.standard_normal((c, d)))
    perm = rng.permutation(c)
    stats = w[perm] + 0.1 * rng.standard_normal((c, d))
    cache = SparseWarmStart()
    current = rng.permutation(c)
    for epoch in range(4):
        if epoch:
            stats = stats + 0.01 * rng.standard_normal((c, d))
            i, j = rng.choice(c, (2, 20), replace=False)
            a, b = current[i], current[j]
            stats[i] = 0.6 * w[a] + 0.8 * w[b]
            stats[j] = 0.8 * w[a] + 0.6 * w[b]
        q = _unit_rows(stats)
        warm, warm_cost = solve_assignment(
            q, w, current, "sparse", warm_start=cache
        )
        cold, cold_cost = solve_assignment(q, w, current, "sparse")
        np.testing.assert_array_equal(warm, cold)
        assert warm_cost == cold_cost
        np.testing.assert_allclose(warm_cost, _dense_optimum(q, w), atol=1e-9)
        current = warm
    assert (cache.cold_solves, cache.warm_solves) == (1, 3)
    assert 0 < cache.last_priced_rows < c // 4  # the jumped rows, not all


def test_warm_start_stale_or_foreign_cache_gives_cold_result():
    # A resumed run may hold a cache from other statistics or other
    # prototypes (or none): the answer must not change.
    q, w, _ = _problem(1500, 16, seed=8, noise=0.1)
    current = np.random.default_rng(3).permutation(1500)
    cold, cold_cost = solve_assignment(q, w, current, "sparse")
    stale = SparseWarmStart()
    solve_assignment(_problem(1500, 16, seed=9)[0], w, None, "sparse",
                     warm_start=stale)  # fmt: skip
    foreign = SparseWarmStart()
    solve_assignment(q, _problem(1500, 16, seed=10)[1], None, "sparse",
                     warm_start=foreign)  # fmt: skip
    for cache in (stale, foreign):
        got, cost = solve_assignment(q, w, current, "sparse", warm_start=cache)
        np.testing.assert_array_equal(got, cold)
        assert cost == cold_cost
    assert foreign.cold_solves == 2  # other prototypes: no reuse


def test_warm_start_keeps_ties_like_cold():
    # Zero statistics (unseen classes) and duplicated representatives:
    # ties break towards `current` the same way with or without a cache.
    q, w, _ = _problem(600, 8, seed=12, noise=0.1)
    q[:50] = 0.0
    q[100:110] = q[99]
    current = np.random.default_rng(5).permutation(600)
    cache = SparseWarmStart()
    solve_assignment(q, w, current, "sparse", warm_start=cache)
    cold, _ = solve_assignment(q, w, current, "sparse")
    warm, _ = solve_assignment(q, w, current, "sparse", warm_start=cache)
    np.testing.assert_array_equal(warm, cold)
    assert cache.warm_solves == 1
    # Canonical within each tied group: members keep their current
    # prototype when it is in the group's set, the rest ascend by class.
    for group in (np.arange(50), np.arange(99, 110)):
        protos = set(warm[group].tolist())
        keep = np.isin(current[group], list(protos))
        np.testing.assert_array_equal(warm[group][keep], current[group][keep])
        rest = warm[group][~keep]
        assert np.all(np.diff(rest) > 0)
    dense, _ = solve_assignment(q, w, current, "dense")
    np.testing.assert_array_equal(dense, cold)
    with pytest.raises(ValueError, match="warm_start"):
        solve_assignment(q, w, current, "sparse", warm_start={})
    with pytest.raises(ValueError, match="refresh_fraction"):
        SparseWarmStart(refresh_fraction=0.0)


def test_auto_switches_to_sparse_above_4096_classes(caplog):
    # `max_rounds` is a sparse-only argument: with 0 pricing rounds the
    # sparse solver returns its starting matching (`current`) and logs a
    # warning, while the dense solver ignores it and returns the optimum.
    # So the result shows which solver "auto" picked.
    for c, sparse_expected in ((4096, False), (4097, True)):
        q, w, perm = _problem(c, 8, seed=c, noise=0.01)
        current = np.arange(c)
        caplog.clear()
        with caplog.at_level("WARNING", logger="keras_dlpa.matching"):
            assignment, _ = solve_assignment(
                q, w, current, method="auto", max_rounds=0
            )
        warned = any("not certified" in r.getMessage() for r in caplog.records)
        assert warned == sparse_expected, c
        expected = current if sparse_expected else perm
        np.testing.assert_array_equal(assignment, expected, err_msg=str(c))
        # Given the rounds it needs, "auto" finds the optimum at any size.
        if sparse_expected:
            assignment, _ = solve_assignment(q, w, current, method="auto")
            np.testing.assert_array_equal(assignment, perm)


def test_sparse_equals_dense_at_thousands_of_classes():
    # Random (unconverged) statistics at c = 3000: the sparse solver's
    # certificate must reach the dense optimum's total cost.
    c = 3000
    q, w, _ = _problem(c, 32, seed=13)
    current = np.random.default_rng(3).permutation(c)
    dense, dense_cost = solve_assignment(q, w, current, method="dense")
    sparse, sparse_cost = solve_assignment(q, w, current, method="sparse")
    assert _is_permutation(sparse, c) and _is_permutation(dense, c)
    np.testing.assert_allclose(sparse_cost, dense_cost, rtol=0, atol=1e-7)
    # The cost returned is the cost of the returned assignment.
    sim = np.einsum("ij,ij->", q, w[sparse])
    np.testing.assert_allclose(sparse_cost, -sim, rtol=1e-12)
