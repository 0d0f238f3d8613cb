"""Token sampling: the reference semantics (numpy) of mpk's in-kernel sampler.

This module is the specification. The GPU kernel and the CPU interpreter
implement the same function; their tests compare against `sample` and
`probabilities` here.

Inputs, per sequence (one row):
  logits l[0..V-1]   float32 (computed in float64 here)
  params             float32 [4], columns PARAMS = (temperature T, top_k K,
                     top_p P, min_p M); build them with `pack_params`
  seed s             uint32 (any integer dtype; taken modulo 2**32)
  position pos       int >= 0: the KV position of the token fed in this step

Specification of one row:
  Greedy:  if T <= 0, the token is the first index of the maximum
           (np.argmax); K, P and M are ignored.
  m   = max(l).
  Top-k:   if 0 < K < V, t_k = the K-th largest logit counting multiplicity
           (np.sort(l)[::-1][K-1]); else t_k = -inf. Ties at t_k are all kept,
           so more than K tokens may survive.
  Weights: w_i = exp((l_i - m) / T) for l_i >= t_k, else 0.
  Top-p:   if P < 1, walk the distinct logit values v in descending order
           among the kept tokens, accumulating the mass of all tokens with
           l_i == v; t_p = the first v at which the accumulated mass >= P * Z,
           where Z = sum(w) (the accumulated mass of all kept tokens, summed in
           that same descending order, so the walk always stops). Else
           t_p = -inf.
  Min-p:   if M > 0, t_m = m + T * ln(M) (keeps the tokens whose probability
           is >= M * p_max); else t_m = -inf.
  t = max(t_k, t_p, t_m); kept set S = {i : l_i >= t}. S is never empty: the
  maximum is always kept.
  Draw:    i* = argmax over i in S of ((l_i - m) / T - ln(-ln(u_i)))
           (Gumbel-max: an exact sample of softmax(l / T) restricted to S);
           ties -> the smallest index.
  Noise:   u_i = ((h_i >> 8) + 0.5) * 2**-24, in (0, 1), with
           h_i = lowbias32(lowbias32(lowbias32(s) + pos) + i)
           (uint32 arithmetic, wrapping on every +), and lowbias32 the mixer
           x ^= x >> 16; x *= 0x7feb352d; x ^= x >> 15; x *= 0x846ca68b;
           x ^= x >> 16 (uint32 wraparound).
  So a sample depends only on (seed, position, logits, params): it is
  reproducible and independent of batching and launch boundaries.

`probabilities` gives the exact distribution of the draw: softmax(l / T)
renormalized over S (greedy: one-hot at np.argmax).

Parameter ranges (pack_params refuses others, sample too): T >= 0 finite;
K an integer, 0 <= K <= 2**24 (0 = off; stored as float32, exact up to 2**24);
0 < P <= 1 (1 = off); 0 <= M < 1 (0 = off). The checks apply to the float32
values stored. Logits may hold -inf (masked tokens; probability 0) but no NaN
or +inf, and not all -inf.

Precision: this reference computes in float64 (u_i is exact there). A float32
implementation draws the same token except where two Gumbel scores, or a logit
and a threshold, agree to within its rounding.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PARAMS", "lowbias32", "uniforms", "thresholds", "probabilities", "sample", "pack_params"]

# Columns of the per-sequence params array (float32 [B, 4]).
PARAMS = ("temperature", "top_k", "top_p", "min_p")

_MASK32 = np.uint64(0xFFFFFFFF)
_TOP_K_MAX = 2**24


def lowbias32(x) -> np.ndarray:
    """The lowbias32 integer mixer, elementwise: uint32 -> uint32 (wrapping).

    Accepts any integer array or scalar; values are taken modulo 2**32.
    """
    # uint64 with masking: the products of two 32-bit values fit, so nothing
    # overflows (and numpy never warns), and the low 32 bits are the uint32 result.
    x = _u32(x).astype(np.uint64)
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x7FEB352D)) & _MASK32
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x846CA68B)) & _MASK32
    x ^= x >> np.uint64(16)
    return x.astype(np.uint32)


def uniforms(seed, position, vocab: int) -> np.ndarray:
    """The noise u[..., i] for i in range(vocab), float64 in (0, 1).

    seed and position are ints or integer arrays (broadcast together); the result
    has their broadcast shape + (vocab,).
    """
    seed = _u32(seed)
    position = _positions(position)
    vocab = int(vocab)
    if vocab < 0:
        raise ValueError(f"vocab must be >= 0, got {vocab}")
    base = lowbias32((lowbias32(seed).astype(np.uint64) + position) & _MASK32)
    h = lowbias32((base[..., None].astype(np.uint64) + np.arange(vocab, dtype=np.uint64)) & _MASK32)
    return ((h >> np.uint32(8)).astype(np.float64) + 0.5) * 2.0**-24


def thresholds(logits, temperature, top_k, top_p, min_p) -> float:
    """The kept-set threshold t of one row: S = {i : logits[i] >= t}.

    -inf when no filter is active. Greedy (temperature <= 0): max(logits); the
    greedy token is the first index of that maximum.
    """
    row = _logits(logits, ndim=1)
    params = _check(np.array([[temperature, top_k, top_p, min_p]], np.float64), "thresholds")
    return float(_thresholds(row[None], params)[0])


def probabilities(logits_row, temperature, top_k, top_p, min_p) -> np.ndarray:
    """The exact distribution (float64 [V]) that `sample` draws one row from."""
    row = _logits(logits_row, ndim=1)
    params = _check(np.array([[temperature, top_k, top_p, min_p]], np.float64), "probabilities")
    p = np.zeros(row.shape[0], np.float64)
    T = params[0, 0]
    if T <= 0:
        p[np.argmax(row)] = 1.0
        return p
    t = _thresholds(row[None], params)[0]
    kept = row >= t
    w = np.exp((row[kept] - row.max()) / T)
    p[kept] = w / w.sum()
    return p


def sample(logits, params, seeds, positions) -> np.ndarray:
    """Draw one token per row: int32 [B].

    logits [B, V] (float32, or anything float), params [B, 4] (PARAMS columns,
    see pack_params), seeds [B] (uint32 values, any integer dtype; taken modulo
    2**32), positions [B] (ints >= 0). seeds and positions may be scalars
    (broadcast over the batch).
    """
    L = _logits(logits, ndim=2)
    B, V = L.shape
    params = np.asarray(params)
    if params.shape != (B, len(PARAMS)):
        raise ValueError(f"params must have shape ({B}, {len(PARAMS)}) for logits of shape {L.shape}, got {params.shape}")
    params = _check(params.astype(np.float64), "sample")
    seeds = np.broadcast_to(_u32(seeds), (B,))
    positions = np.broadcast_to(_positions(positions), (B,))

    T = params[:, 0]
    out = np.argmax(L, axis=1)  # greedy rows (T <= 0)
    rows = np.flatnonzero(T > 0)
    if rows.size:
        Ls, Ts = L[rows], T[rows][:, None]
        t = _thresholds(Ls, params[rows])
        u = uniforms(seeds[rows], positions[rows], V)
        # A -inf logit gives a -inf score (m is finite, so no -inf - -inf).
        scores = (Ls - Ls.max(axis=1, keepdims=True)) / Ts - np.log(-np.log(u))
        scores[Ls < t[:, None]] = -np.inf
        out[rows] = np.argmax(scores, axis=1)
    return out.astype(np.int32)


def pack_params(temperature=0.0, top_k=0, top_p=1.0, min_p=0.0, batch=1) -> np.ndarray:
    """The per-sequence params array, float32 [B, 4] in PARAMS order.

    Each argument is a scalar (the same for every sequence) or a sequence of
    per-sequence values; B = batch, or the length of the per-sequence values.
    Defaults: greedy, no filters. Raises ValueError for values out of range:
    temperature >= 0 and finite, top_k an integer in [0, 2**24] (0 = off),
    0 < top_p <= 1, 0 <= min_p < 1 (checked on the float32 values stored).
    """
    values = {}
    for name, v in zip(PARAMS, (temperature, top_k, top_p, min_p)):
        try:
            a = np.asarray(v, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number or a sequence of numbers, got {v!r}") from None
        if a.ndim > 1:
            raise ValueError(f"{name} must be a scalar or a 1-D sequence, got shape {a.shape}")
        values[name] = a
    batch = int(batch)
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    try:
        shape = np.broadcast_shapes((batch,) if batch != 1 else (1,), *(a.shape for a in values.values()))
    except ValueError:
        lengths = {n: a.shape[0] for n, a in values.items() if a.ndim == 1}
        raise ValueError(f"per-sequence parameter lengths {lengths} do not agree with each other or with batch={batch}") from None
    out = np.empty((shape[0], len(PARAMS)), np.float32)
    for j, name in enumerate(PARAMS):
        a = values[name]
        if name == "top_k":
            _check_top_k(a)
        with np.errstate(over="ignore"):  # too large for float32 -> inf, refused below
            out[:, j] = np.broadcast_to(a, shape)
    _check(out.astype(np.float64), "pack_params")
    return out


# -- internals -------------------------------------------------------------


def _u32(x) -> np.ndarray:
    """Integers modulo 2**32, as a uint32 array."""
    a = np.asarray(x)
    if a.dtype.kind not in "iu":
        raise ValueError(f"seeds must be integers, got dtype {a.dtype}")
    if a.dtype.kind == "u":
        return (a.astype(np.uint64) & _MASK32).astype(np.uint32)
    return (a.astype(np.int64) & 0xFFFFFFFF).astype(np.uint32)


def _positions(x) -> np.ndarray:
    """Positions (ints >= 0) as uint64 modulo 2**32, ready for the uint32 add."""
    a = np.asarray(x)
    if a.dtype.kind not in "iu":
        raise ValueError(f"positions must be integers, got dtype {a.dtype}")
    if a.dtype.kind == "i" and np.any(a < 0):
        raise ValueError(f"positions must be >= 0, got {a.min()}")
    return a.astype(np.uint64) & _MASK32


def _logits(x, ndim: int) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != ndim:
        what = "one row [V]" if ndim == 1 else "[B, V]"
        raise ValueError(f"logits must be {what}, got shape {a.shape}")
    if a.shape[-1] == 0:
        raise ValueError("logits must have a vocabulary of at least one token")
    a = a.astype(np.float64)
    if np.isnan(a).any() or np.isposinf(a).any():
        raise ValueError("logits must not hold NaN or +inf")
    if np.isneginf(a).all(axis=-1).any():
        raise ValueError("a logits row is all -inf")
    return a


def _check_top_k(k: np.ndarray) -> None:
    if not np.all(np.isfinite(k)) or np.any(k != np.floor(k)):
        raise ValueError(f"top_k must be an integer (0 = off), got {k.tolist()}")
    if np.any(k < 0):
        raise ValueError(f"top_k must be >= 0 (0 = off), got {k.tolist()}")
    if np.any(k > _TOP_K_MAX):
        raise ValueError(f"top_k must be <= 2**24 = {_TOP_K_MAX} (stored exactly as float32), got {k.tolist()}")


def _check(params: np.ndarray, where: str) -> np.ndarray:
    """Validate float64 [B, 4] params; return them."""
    T, K, P, M = params.T
    if not np.all(np.isfinite(T)) or np.any(T < 0):
        raise ValueError(f"{where}: temperature must be finite and >= 0 (0 = greedy), got {T.tolist()}")
    _check_top_k(K)
    if not np.all((P > 0) & (P <= 1)):  # NaN fails too
        raise ValueError(f"{where}: top_p must be in (0, 1] (1 = off), got {P.tolist()}")
    if not np.all((M >= 0) & (M < 1)):
        raise ValueError(f"{where}: min_p must be in [0, 1) (0 = off), got {M.tolist()}")
    return params


def _thresholds(L: np.ndarray, params: np.ndarray) -> np.ndarray:
    """t for every row of float64 logits L [B, V] with valid params [B, 4]."""
    B, V = L.shape
    T, K, P, M = params.T
    K = K.astype(np.int64)
    m = L.max(axis=1)
    greedy = T <= 0
    Ts = np.where(greedy, 1.0, T)  # greedy rows get t = m below; avoid dividing by 0
    t = np.full(B, -np.inf)

    use_k = (K > 0) & (K < V) & ~greedy
    use_p = (P < 1) & ~greedy
    if np.any(use_k | use_p):
        srt = -np.sort(-L, axis=1)  # descending
        t_k = np.where(use_k, srt[np.arange(B), np.clip(K - 1, 0, V - 1)], -np.inf)
        t = np.maximum(t, t_k)
        if np.any(use_p):
            r = np.flatnonzero(use_p)
            s = srt[r]
            kept = s >= t_k[r][:, None]
            w = np.where(kept, np.exp((s - m[r][:, None]) / Ts[r][:, None]), 0.0)
            mass = np.cumsum(w, axis=1)  # sequential, in descending order of the logits
            Z = mass[:, -1]
            group_end = np.ones_like(kept)
            group_end[:, :-1] = s[:, 1:] != s[:, :-1]
            # The last kept token ends a group with mass Z >= P * Z, so some j qualifies.
            j = np.argmax(group_end & (mass >= (P[r] * Z)[:, None]), axis=1)
            t[r] = np.maximum(t[r], s[np.arange(r.size), j])

    use_m = (M > 0) & ~greedy
    if np.any(use_m):
        with np.errstate(divide="ignore"):
            t_m = np.where(use_m, m + Ts * np.log(np.where(use_m, M, 1.0)), -np.inf)
        t = np.maximum(t, t_m)
    return np.where(greedy, m, t)
