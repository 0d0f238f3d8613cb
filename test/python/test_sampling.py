"""mpk.sampling, the reference semantics of the in-kernel sampler: the hash and
its uniforms, greedy, the filters (checked by hand and against a literal
pure-Python transcription of the spec), chi-square goodness of fit of the draws
against `probabilities`, reproducibility, and pack_params' range checks.

Everything is deterministic (fixed numpy seeds, fixed sampler seeds): a
statistical test that passes once passes every time."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mpk import sampling
from mpk.sampling import PARAMS, lowbias32, pack_params, probabilities, sample, thresholds, uniforms

M32 = 0xFFFFFFFF


# -- helpers ---------------------------------------------------------------


def py_lowbias32(x: int) -> int:
    """lowbias32 with Python ints."""
    x &= M32
    x ^= x >> 16
    x = (x * 0x7FEB352D) & M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & M32
    x ^= x >> 16
    return x


def py_uniform(seed: int, pos: int, i: int) -> float:
    h = py_lowbias32((py_lowbias32((py_lowbias32(seed) + pos) & M32) + i) & M32)
    return ((h >> 8) + 0.5) * 2.0**-24


def py_sample(logits, T, K, P, M, seed, pos) -> tuple[int, float]:
    """The spec, transcribed literally with Python floats and loops: (token, t)."""
    l = [float(x) for x in logits]
    V = len(l)
    if T <= 0:
        return l.index(max(l)), max(l)
    m = max(l)
    K = int(K)
    t_k = sorted(l, reverse=True)[K - 1] if 0 < K < V else -math.inf
    w = [math.exp((x - m) / T) if x >= t_k else 0.0 for x in l]
    t_p = -math.inf
    if P < 1:
        values = sorted({x for x in l if x >= t_k}, reverse=True)
        # Z: the accumulated mass of all kept tokens, summed in descending order.
        Z = 0.0
        for x in sorted((x for x in l if x >= t_k), reverse=True):
            Z += math.exp((x - m) / T)
        acc = 0.0
        for v in values:
            acc += sum(w[i] for i in range(V) if l[i] == v)
            if acc >= P * Z:
                t_p = v
                break
    t_m = m + T * math.log(M) if M > 0 else -math.inf
    t = max(t_k, t_p, t_m)
    best, best_i = -math.inf, -1
    for i in range(V):
        if l[i] >= t:
            score = (l[i] - m) / T - math.log(-math.log(py_uniform(seed, pos, i)))
            if score > best:
                best, best_i = score, i
    return best_i, t


def chi2_sf(x: float, dof: int) -> float:
    """P(chi2_dof >= x): the regularized upper incomplete gamma Q(dof/2, x/2)."""
    a, x = dof / 2.0, x / 2.0
    if x <= 0:
        return 1.0
    log_front = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1:  # series for P(a, x)
        term = total = 1.0 / a
        n = a
        while abs(term) > abs(total) * 1e-15:
            n += 1
            term *= x / n
            total += term
        return max(0.0, 1.0 - total * math.exp(log_front))
    # continued fraction for Q(a, x) (modified Lentz)
    tiny = 1e-300
    b = x + 1 - a
    c, d = 1 / tiny, 1 / b
    h = d
    for i in range(1, 10000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return math.exp(log_front) * h


def chi_square(counts: np.ndarray, probs: np.ndarray) -> float:
    """Goodness-of-fit p-value of counts against probs over the tokens with
    probs > 0, the bins with expected counts < 5 pooled (smallest first)."""
    keep = probs > 0
    n = counts.sum()
    expected = probs[keep] * n
    observed = counts[keep].astype(np.float64)
    order = np.argsort(expected)
    expected, observed = expected[order], observed[order]
    bins_e, bins_o = [], []
    acc_e = acc_o = 0.0
    for e, o in zip(expected, observed):
        acc_e += e
        acc_o += o
        if acc_e >= 5:
            bins_e.append(acc_e)
            bins_o.append(acc_o)
            acc_e = acc_o = 0.0
    if acc_e > 0:  # the leftover goes into the last bin
        if bins_e:
            bins_e[-1] += acc_e
            bins_o[-1] += acc_o
        else:
            bins_e.append(acc_e)
            bins_o.append(acc_o)
    e, o = np.array(bins_e), np.array(bins_o)
    if len(e) < 2:
        return 1.0
    stat = float(((o - e) ** 2 / e).sum())
    return chi2_sf(stat, len(e) - 1)


def random_logits(V: int, seed: int, scale: float = 2.0) -> np.ndarray:
    return (scale * np.random.default_rng(seed).standard_normal(V)).astype(np.float32)


# -- the hash and the uniforms --------------------------------------------


def test_lowbias32_known_answers():
    xs = [0, 1, 2, 3, 0x12345678, 0x7FFFFFFF, 0x80000000, 0xDEADBEEF, M32]
    ours = lowbias32(np.array(xs, np.uint32))
    assert ours.dtype == np.uint32
    assert ours.tolist() == [py_lowbias32(x) for x in xs]
    # Pinned values (computed by hand above, fixed here against drift).
    assert ours[:4].tolist() == [0, 1753845952, 3507691905, 1408362973]
    assert int(lowbias32(M32)) == 1734902346
    # Any integer dtype, values modulo 2**32; the shape is kept.
    assert int(lowbias32(-1)) == py_lowbias32(M32)
    assert int(lowbias32(np.uint64(2**32 + 5))) == py_lowbias32(5)
    assert lowbias32(np.arange(6, dtype=np.int32).reshape(2, 3)).shape == (2, 3)
    # A bijection: no collisions on a block of inputs.
    block = lowbias32(np.arange(1 << 16, dtype=np.uint32) * np.uint32(40503))
    assert np.unique(block).size == 1 << 16


def test_uniforms_match_the_spec():
    for seed, pos in [(0, 0), (1, 0), (0, 1), (12345, 678), (M32, M32), (2**31, 7)]:
        u = uniforms(seed, pos, 10)
        assert u.shape == (10,) and u.dtype == np.float64
        assert u.tolist() == [py_uniform(seed, pos, i) for i in range(10)]
    # Broadcast over seeds and positions.
    u = uniforms(np.array([3, 4]), np.array([[0], [9]]), 5)
    assert u.shape == (2, 2, 5)
    assert u[1, 0, 2] == py_uniform(3, 9, 2)
    with pytest.raises(ValueError):
        uniforms(0, -1, 4)


def test_uniforms_in_open_interval_and_uniform():
    rng_cases = [
        uniforms(12345, 0, 100_000),  # along the vocabulary
        uniforms(np.arange(100_000), 0, 1)[:, 0],  # along seeds
        uniforms(777, np.arange(100_000), 1)[:, 0],  # along positions
    ]
    for u in rng_cases:
        assert np.all(u > 0) and np.all(u < 1)
        # On the grid (k + 0.5) * 2**-24.
        k = u * 2**24 - 0.5
        assert np.array_equal(k, np.round(k))
        counts = np.bincount((u * 64).astype(int), minlength=64)
        assert chi_square(counts, np.full(64, 1 / 64)) > 1e-4
    # Successive pairs (u_i, u_i+1) cover an 8 x 8 grid evenly too.
    u = uniforms(99, 5, 100_001)
    cells = (u[:-1] * 8).astype(int) * 8 + (u[1:] * 8).astype(int)
    assert chi_square(np.bincount(cells, minlength=64), np.full(64, 1 / 64)) > 1e-4


def test_chi2_sf():
    # Known values: P(chi2_1 >= 3.841459) = 0.05, P(chi2_10 >= 18.307038) = 0.05,
    # P(chi2_2 >= x) = exp(-x / 2), P(chi2_63 >= 63) ~ 0.4757.
    assert chi2_sf(3.841459, 1) == pytest.approx(0.05, rel=1e-5)
    assert chi2_sf(18.307038, 10) == pytest.approx(0.05, rel=1e-5)
    for x in (0.1, 1.0, 5.0, 40.0):
        assert chi2_sf(x, 2) == pytest.approx(math.exp(-x / 2), rel=1e-10)
    stats = pytest.importorskip("scipy.stats")
    for x, k in [(63.0, 63), (10.0, 30), (100.0, 40), (0.5, 3)]:
        assert chi2_sf(x, k) == pytest.approx(stats.chi2.sf(x, k), rel=1e-8)


# -- greedy ------------------------------------------------------------------


def test_greedy_is_argmax_first_index():
    rng = np.random.default_rng(1)
    logits = rng.integers(-3, 4, size=(8, 50)).astype(np.float32)  # many ties at the max
    logits[3] = 2.0  # a whole row of ties -> token 0
    # K, P, M are ignored when greedy.
    params = pack_params(temperature=0.0, top_k=[0, 1, 3, 0, 5, 0, 2, 7], top_p=0.3, min_p=0.5, batch=8)
    for seeds in (0, np.arange(8)):
        got = sample(logits, params, seeds, np.arange(8) * 11)
        assert got.dtype == np.int32
        assert got.tolist() == np.argmax(logits, axis=1).tolist()
    assert got[3] == 0
    for row in logits:
        p = probabilities(row, 0.0, 3, 0.5, 0.2)
        assert p[np.argmax(row)] == 1.0 and p.sum() == 1.0
        assert thresholds(row, 0.0, 0, 1.0, 0.0) == row.max()


# -- the filters, by hand ------------------------------------------------------


def softmax(x) -> np.ndarray:
    e = np.exp(np.asarray(x, np.float64) - max(x))
    return e / e.sum()


def renorm(p, kept) -> np.ndarray:
    q = np.where(kept, p, 0.0)
    return q / q.sum()


L4 = np.array([2.0, 1.0, 0.0, -1.0], np.float32)
P4 = softmax([2.0, 1.0, 0.0, -1.0])  # 0.6439, 0.2369, 0.0871, 0.0321


@pytest.mark.parametrize(
    "params, kept",
    [
        ((1.0, 0, 1.0, 0.0), [1, 1, 1, 1]),  # no filter
        ((1.0, 4, 1.0, 0.0), [1, 1, 1, 1]),  # top_k = V: off
        ((1.0, 9, 1.0, 0.0), [1, 1, 1, 1]),  # top_k > V: off
        ((1.0, 2, 1.0, 0.0), [1, 1, 0, 0]),
        ((1.0, 1, 1.0, 0.0), [1, 0, 0, 0]),
        ((1.0, 0, 0.5, 0.0), [1, 0, 0, 0]),  # 0.644 >= 0.5
        ((1.0, 0, 0.8, 0.0), [1, 1, 0, 0]),  # 0.644 < 0.8 <= 0.881
        ((1.0, 0, 0.9, 0.0), [1, 1, 1, 0]),  # 0.881 < 0.9 <= 0.968
        ((1.0, 0, 0.99, 0.0), [1, 1, 1, 1]),
        ((1.0, 0, 1.0, 0.3), [1, 1, 0, 0]),  # p >= 0.3 * 0.644 = 0.193
        ((1.0, 0, 1.0, 0.1), [1, 1, 1, 0]),  # p >= 0.0644
        ((1.0, 0, 1.0, 0.04), [1, 1, 1, 1]),  # p >= 0.0258
        ((1.0, 3, 0.8, 0.0), [1, 1, 0, 0]),  # combined: the tightest wins
        ((1.0, 3, 0.99, 0.3), [1, 1, 0, 0]),
    ],
)
def test_probabilities_by_hand(params, kept):
    p = probabilities(L4, *params)
    assert p.dtype == np.float64
    np.testing.assert_allclose(p, renorm(P4, np.array(kept, bool)), rtol=1e-12, atol=0)
    t = thresholds(L4, *params)
    assert ((L4 >= t) == np.array(kept, bool)).all()


def test_probabilities_temperature_by_hand():
    for T in (0.5, 0.7, 2.0):
        np.testing.assert_allclose(probabilities(L4, T, 0, 1.0, 0.0), softmax(L4.astype(np.float64) / T), rtol=1e-12)
    # top_p walks the tempered distribution: at T = 0.5, p = softmax(2 l) = 0.867, 0.117, ...
    np.testing.assert_allclose(probabilities(L4, 0.5, 0, 0.85, 0.0), [1, 0, 0, 0])
    # min_p is relative to the tempered p_max: t_m = m + T ln M.
    p2 = softmax(L4 / 2.0)  # 0.475, 0.288, 0.175, 0.106
    np.testing.assert_allclose(probabilities(L4, 2.0, 0, 1.0, 0.3), renorm(p2, p2 >= 0.3 * p2[0]), rtol=1e-12)
    assert thresholds(L4, 2.0, 0, 1.0, 0.3) == pytest.approx(2.0 + 2.0 * math.log(0.3))


def test_ties_by_hand():
    l = np.array([1.0, 1.0, 0.0, 0.0, -1.0], np.float32)
    p = softmax(l)
    # top_k: the K-th largest counting multiplicity; its ties are all kept.
    np.testing.assert_allclose(probabilities(l, 1.0, 1, 1.0, 0.0), [0.5, 0.5, 0, 0, 0])
    np.testing.assert_allclose(probabilities(l, 1.0, 2, 1.0, 0.0), [0.5, 0.5, 0, 0, 0])
    np.testing.assert_allclose(probabilities(l, 1.0, 3, 1.0, 0.0), renorm(p, l >= 0))  # 4 tokens survive
    assert thresholds(l, 1.0, 3, 1.0, 0.0) == 0.0
    # top_p: a value's whole tie group is added at once, and kept whole.
    np.testing.assert_allclose(probabilities(l, 1.0, 0, 0.1, 0.0), [0.5, 0.5, 0, 0, 0])
    mass_1 = p[:2].sum()  # 0.687
    np.testing.assert_allclose(probabilities(l, 1.0, 0, mass_1 + 0.01, 0.0), renorm(p, l >= 0))
    # top_p is applied to the top-k survivors, renormalized (Z over the kept).
    q = renorm(p, l >= 0)  # 0.368, 0.368, 0.132, 0.132
    assert q[:2].sum() > 0.7
    np.testing.assert_allclose(probabilities(l, 1.0, 3, 0.7, 0.0), [0.5, 0.5, 0, 0, 0])
    # min_p keeps p == M * p_max exactly when t_m rounds to the logit: here M = 1 / e^1.
    np.testing.assert_allclose(probabilities(l, 1.0, 0, 1.0, 0.5), [0.5, 0.5, 0, 0, 0])


def test_minus_inf_logits_are_never_drawn():
    l = np.array([0.0, -np.inf, 1.0, -np.inf, 0.5], np.float32)
    p = probabilities(l, 1.0, 0, 1.0, 0.0)
    assert p[1] == 0 and p[3] == 0 and p.sum() == pytest.approx(1.0)
    draws = sample(np.tile(l, (2000, 1)), pack_params(1.0, batch=2000), np.arange(2000), 3)
    assert set(np.unique(draws).tolist()) == {0, 2, 4}
    # top_k reaching into the -inf tokens keeps them all, at probability 0.
    assert probabilities(l, 1.0, 4, 1.0, 0.0)[[1, 3]].tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="all -inf"):
        probabilities(np.full(3, -np.inf), 1.0, 0, 1.0, 0.0)
    with pytest.raises(ValueError, match="NaN"):
        sample(np.array([[0.0, np.nan]]), pack_params(1.0), 0, 0)


# -- against a literal transcription of the spec --------------------------------


def test_matches_pure_python_spec():
    rng = np.random.default_rng(7)
    for case in range(250):
        V = int(rng.integers(1, 41))
        if case % 2:
            l = rng.integers(-4, 3, size=V).astype(np.float32)  # ties everywhere
        else:
            l = (3 * rng.standard_normal(V)).astype(np.float32)
        T = float(np.float32(rng.choice([0.0, 0.3, 0.7, 1.0, 1.5, 4.0])))
        K = int(rng.choice([0, 0, 1, 2, 3, 5, 8, 100]))
        P = float(np.float32(rng.choice([1.0, 1.0, 0.05, 0.5, 0.8, 0.95])))
        M = float(np.float32(rng.choice([0.0, 0.0, 0.01, 0.1, 0.5, 0.9])))
        seed, pos = int(rng.integers(0, 2**32)), int(rng.integers(0, 5000))
        token, t = py_sample(l, T, K, P, M, seed, pos)
        params = pack_params(T, K, P, M)
        assert sample(l[None], params, np.array([seed], np.uint32), [pos]).tolist() == [token], (case, l, T, K, P, M)
        assert thresholds(l, *params[0]) == t, case
        p = probabilities(l, *params[0])
        assert p[token] > 0
        if T > 0:
            assert ((p > 0) == ((l >= t) & np.isfinite(l))).all()


# -- goodness of fit ---------------------------------------------------------


def tie_logits() -> np.ndarray:
    """V = 24 with the 4th..7th largest equal: top_k 5 keeps 7 tokens."""
    l = np.sort(random_logits(24, 5))[::-1].copy()
    l[3:7] = l[4]
    return np.random.default_rng(6).permutation(l)


CASES = {
    # name: (logits, temperature, top_k, top_p, min_p)
    "T=0.7": (random_logits(32, 10), 0.7, 0, 1.0, 0.0),
    "T=1.5": (random_logits(48, 11), 1.5, 0, 1.0, 0.0),
    "top_k=5": (random_logits(32, 12), 1.0, 5, 1.0, 0.0),
    "top_p=0.8": (random_logits(40, 13), 1.0, 0, 0.8, 0.0),
    "min_p=0.1": (random_logits(64, 14), 1.0, 0, 1.0, 0.1),
    "combined": (random_logits(64, 15, scale=1.5), 0.8, 20, 0.9, 0.05),
    "ties at top_k": (tie_logits(), 1.2, 5, 1.0, 0.0),
    "ties at top_p": (np.repeat(random_logits(8, 16), 3), 1.0, 0, 0.6, 0.0),
}
N = 20_000


@pytest.mark.parametrize("sweep", ["seeds", "positions"])
@pytest.mark.parametrize("name", list(CASES))
def test_draws_fit_probabilities(name, sweep):
    logits, T, K, P, M = CASES[name]
    V = logits.shape[0]
    params = pack_params(T, K, P, M, batch=N)
    if sweep == "seeds":
        seeds, positions = np.arange(N, dtype=np.uint32), np.zeros(N, np.int64)
    else:
        seeds, positions = np.full(N, 0xC0FFEE, np.uint32), np.arange(N, dtype=np.int64)
    draws = sample(np.broadcast_to(logits, (N, V)), params, seeds, positions)
    p = probabilities(logits, *params[0])
    kept = p > 0
    if name == "ties at top_k":
        assert kept.sum() == 7
    if name.startswith("ties"):  # a tie group is kept or dropped whole
        for v in np.unique(logits):
            assert len(set(kept[logits == v].tolist())) == 1
    assert 1 < kept.sum() < V or name.startswith("T=")
    counts = np.bincount(draws, minlength=V)
    assert counts[~kept].sum() == 0, f"tokens outside the kept set drawn: {np.flatnonzero(counts * ~kept)}"
    pvalue = chi_square(counts, p)
    assert pvalue > 1e-4, (name, sweep, pvalue)


# -- reproducibility ---------------------------------------------------------


def test_reproducible_and_batch_independent():
    rng = np.random.default_rng(3)
    B, V = 8, 151_936
    logits = (2 * rng.standard_normal((B, V))).astype(np.float32)
    params = pack_params(
        temperature=[0.0, 0.6, 1.0, 1.0, 1.3, 0.9, 1.0, 0.7],
        top_k=[0, 0, 50, 0, 0, 40, 1, 0],
        top_p=[1.0, 1.0, 1.0, 0.9, 1.0, 0.95, 1.0, 0.5],
        min_p=[0.0, 0.0, 0.0, 0.0, 0.05, 0.02, 0.0, 0.0],
    )
    seeds = rng.integers(0, 2**32, size=B, dtype=np.uint64)
    positions = rng.integers(0, 40_000, size=B)
    a = sample(logits, params, seeds, positions)
    assert a.tolist() == sample(logits, params, seeds, positions).tolist()
    assert a[0] == np.argmax(logits[0]) and a[6] == np.argmax(logits[6])
    # Row b alone, or in a reordered batch, draws the same token.
    for b in range(B):
        assert sample(logits[b : b + 1], params[b : b + 1], seeds[b : b + 1], positions[b : b + 1])[0] == a[b]
    perm = rng.permutation(B)
    assert sample(logits[perm], params[perm], seeds[perm], positions[perm]).tolist() == a[perm].tolist()
    # Seeds of any integer dtype, scalars broadcast.
    assert sample(logits[1:2], params[1:2], np.int64(seeds[1]), int(positions[1]))[0] == a[1]
    assert sample(logits[1:2], params[1:2], seeds[1:2].astype(np.uint32), positions[1:2].astype(np.int32))[0] == a[1]


def test_different_seeds_give_different_tokens():
    logits = random_logits(64, 20, scale=0.5)  # flat-ish: sum p^2 ~ 1/50
    params = pack_params(1.0, batch=400)
    for seeds, positions in [(np.arange(400), 17), (np.full(400, 5), np.arange(400))]:
        draws = sample(np.broadcast_to(logits, (400, 64)), params, seeds, positions)
        assert np.mean(draws[1:] == draws[:-1]) < 0.1
        assert np.unique(draws).size > 40
    # And for one (seed, position) the same token every time, whatever else is in the batch.
    one = sample(logits[None], pack_params(1.0), [123], [45])[0]
    mixed = np.stack([logits, random_logits(64, 21), logits])
    assert sample(mixed, pack_params(1.0, batch=3), [123, 9, 123], [45, 45, 45])[[0, 2]].tolist() == [one, one]


def test_golden_values():
    """Pinned answers, easy to reproduce in C/CUDA: a kernel that gets these right
    implements the hash, the uniforms and the filters as specified."""
    # h_i for seed 42, position 7, i = 0..3.
    h = lowbias32((int(lowbias32(42)) + 7) & M32)
    h = lowbias32(np.uint64(h) + np.arange(4, dtype=np.uint64))
    assert h.tolist() == [1288220660, 665180818, 2199459674, 2719833615]
    u = uniforms(42, 7, 4)
    assert u.tolist() == [((x >> 8) + 0.5) * 2.0**-24 for x in h.tolist()]
    # l_i = float32(3 sin(1.7 i)), V = 32; one parameter set per row.
    l = (3 * np.sin(1.7 * np.arange(32))).astype(np.float32)
    params = pack_params(
        temperature=[0.0, 1.0, 0.7, 1.0, 1.0, 1.5, 2.0, 0.8],
        top_k=[0, 0, 3, 0, 0, 0, 0, 10],
        top_p=[1.0, 1.0, 1.0, 0.8, 1.0, 1.0, 1.0, 0.9],
        min_p=[0.0, 0.0, 0.0, 0.0, 0.2, 0.0, 0.0, 0.05],
    )
    seeds = np.array([42, 0, 4294967295, 123456789, 7, 99, 2024, 1], np.uint32)
    positions = np.array([7, 0, 100000, 31, 1, 2, 3, 4])
    expected = [12, 30, 1, 27, 16, 27, 12, 1]
    assert sample(np.tile(l, (8, 1)), params, seeds, positions).tolist() == expected
    assert [py_sample(l, *params[b], int(seeds[b]), int(positions[b]))[0] for b in range(8)] == expected
    assert [int((probabilities(l, *params[b]) > 0).sum()) for b in range(8)] == [1, 32, 3, 9, 12, 32, 32, 8]


# -- pack_params ---------------------------------------------------------------


def test_pack_params_layout():
    assert PARAMS == ("temperature", "top_k", "top_p", "min_p")
    p = pack_params()
    assert p.dtype == np.float32 and p.shape == (1, 4)
    assert p.tolist() == [[0.0, 0.0, 1.0, 0.0]]
    p = pack_params(temperature=0.7, top_k=50, top_p=0.9, min_p=0.05, batch=3)
    assert p.shape == (3, 4)
    np.testing.assert_array_equal(p, np.tile(np.array([0.7, 50, 0.9, 0.05], np.float32), (3, 1)))
    p = pack_params(temperature=[0.0, 1.0], top_k=[0, 2**24])
    assert p.shape == (2, 4) and p[1, 1] == 2**24 and p[:, 2].tolist() == [1.0, 1.0]
    assert pack_params(top_k=7.0)[0, 1] == 7
    with pytest.raises(ValueError):
        pack_params(temperature=[1.0, 1.0], top_k=[1, 2, 3])
    with pytest.raises(ValueError):
        pack_params(temperature=[1.0, 1.0], batch=3)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(temperature=-0.1), "temperature"),
        (dict(temperature=float("inf")), "temperature"),
        (dict(temperature=float("nan")), "temperature"),
        (dict(temperature=1e39), "temperature"),  # inf as float32
        (dict(top_p=0.0), "top_p"),
        (dict(top_p=1.5), "top_p"),
        (dict(top_p=1e-50), "top_p"),  # 0 as float32
        (dict(min_p=1.0), "min_p"),
        (dict(min_p=-0.1), "min_p"),
        (dict(min_p=0.99999999), "min_p"),  # 1 as float32
        (dict(top_k=-1), "top_k"),
        (dict(top_k=2**25), "top_k"),
        (dict(top_k=2**24 + 1), "top_k"),
        (dict(top_k=2.5), "top_k"),
        (dict(temperature=[1.0, -1.0]), "temperature"),
    ],
)
def test_pack_params_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        pack_params(**kwargs)


def test_sample_rejects_bad_params_and_shapes():
    logits = np.zeros((2, 5), np.float32)
    bad = pack_params(1.0, batch=2)
    bad[1, 2] = 0.0  # top_p 0
    with pytest.raises(ValueError, match="top_p"):
        sample(logits, bad, 0, 0)
    with pytest.raises(ValueError, match="shape"):
        sample(logits, pack_params(1.0, batch=3), 0, 0)
    with pytest.raises(ValueError, match="positions"):
        sample(logits, pack_params(1.0, batch=2), 0, [-1, 0])
    with pytest.raises(ValueError, match="logits"):
        sample(logits[0], pack_params(1.0), 0, 0)


def test_module_documents_the_spec():
    doc = sampling.__doc__
    for phrase in ("Greedy", "Top-k", "Top-p", "Min-p", "Gumbel", "lowbias32", "0x7feb352d", "0x846ca68b", "2**-24"):
        assert phrase in doc
