"""Reference semantics of the mpk graph ops, as plain numpy functions.

One function per graph op (dialects/README.md), named after it, taking and
returning numpy arrays. They are the single source of truth for what an op
computes: the graph interpreter calls them on whole tensors, a task-level
interpreter calls them on tiles (a column slice of a linear's weight, a
subset of heads, a range of batch rows), so none of them assumes it sees a
whole operator.

Precision: every op computes in float64 when its float input is float64 and
in float32 otherwise (bf16/f16 arrive as float32 from the caller, numpy has no
bf16), and returns its first float input's dtype. Reductions (RMS statistics,
softmax, dot products) are never done below float32.
"""

from __future__ import annotations

import numpy as np


def _compute_dtype(x: np.ndarray) -> np.dtype:
    return np.dtype(np.float64) if x.dtype == np.float64 else np.dtype(np.float32)


def _as(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    return np.asarray(x, dtype=dtype)


def weight(value: np.ndarray) -> np.ndarray:
    """`mpk.weight`: the array bound to the name (identity)."""
    return value


state = weight


def embedding(ids: np.ndarray, table: np.ndarray) -> np.ndarray:
    """`h[b] = table[ids[b]]`; ids [B] integer, table [V, H] -> [B, H]."""
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() >= table.shape[0]):
        raise IndexError(f"token id out of range [0, {table.shape[0]})")
    return table[ids.astype(np.int64)]


def rmsnorm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    """Normalize every group of D = len(w) consecutive elements of x's last dim.

    x [B, N] with N % D == 0: D == N is a layer's norm, D == head_dim is QK-norm
    over flattened heads. `y = x / sqrt(mean(x^2) + eps) * w`.
    """
    dt = _compute_dtype(x)
    d = w.shape[-1]
    groups = _as(x, dt).reshape(*x.shape[:-1], x.shape[-1] // d, d)
    inv_rms = 1.0 / np.sqrt(np.mean(groups * groups, axis=-1, keepdims=True) + dt.type(eps))
    return (groups * inv_rms * _as(w, dt)).reshape(x.shape).astype(x.dtype)


def linear(x: np.ndarray, w: np.ndarray, residual: np.ndarray | None = None) -> np.ndarray:
    """`y = x @ w^T (+ residual)`; x [B, K], w [N, K] -> [B, N]."""
    dt = _compute_dtype(x)
    y = _as(x, dt) @ _as(w, dt).T
    if residual is not None:
        y = y + _as(residual, dt)
    return y.astype(x.dtype)


def rope(x: np.ndarray, positions: np.ndarray, inv_freq: np.ndarray) -> np.ndarray:
    """Rotate-half rotary embedding of every head of D = 2 * len(inv_freq).

    x [B, N] (heads flattened, N % D == 0), positions [B] integer. The angle is
    computed in float32 like the PyTorch models do (`pos.float() * inv_freq`),
    so cos/sin match them bit for bit before the rotation.
    """
    dt = _compute_dtype(x)
    inv_freq = np.asarray(inv_freq, dtype=np.float32)
    half = inv_freq.shape[0]
    d = 2 * half
    angle = (np.asarray(positions).astype(np.float32)[:, None] * inv_freq[None, :]).astype(dt)
    cos, sin = np.cos(angle)[:, None, :], np.sin(angle)[:, None, :]  # [B, 1, D/2]
    heads = _as(x, dt).reshape(x.shape[0], x.shape[1] // d, d)
    lo, hi = heads[..., :half], heads[..., half:]
    out = np.concatenate([lo * cos - hi * sin, hi * cos + lo * sin], axis=-1)
    return out.reshape(x.shape).astype(x.dtype)


def rows_per_sequence(rows: int, cache: np.ndarray) -> int:
    """Query (or new) rows per sequence: R rows over a cache of B sequences, R % B == 0.
    Row r belongs to sequence r // (R / B): decode has one row per sequence, a
    prefill chunk C."""
    if cache.shape[0] == 0 or rows % cache.shape[0]:
        raise ValueError(f"{rows} rows do not split evenly over {cache.shape[0]} sequences")
    return rows // cache.shape[0]


def attention(q: np.ndarray, k_cache: np.ndarray, v_cache: np.ndarray, positions: np.ndarray,
              head_dim: int, scale: float) -> np.ndarray:
    """Attention of each query row over the cache rows 0..pos[r] of its sequence.

    q [R, Hq*D], caches [B, S, Hkv*D], positions [R]; row r is sequence
    r // (R / B) (`rows_per_sequence`): one row per sequence in decode, a
    chunk of consecutive prompt positions in prefill, where this is causal
    attention over the cache once the chunk's keys are appended. Query head h
    reads KV head h // (Hq / Hkv) (grouped-query). A tile with a subset of
    query heads passes the matching subset of KV heads, so the ratio is taken
    from the shapes; a tile of rows passes the caches of its sequences.
    """
    dt = _compute_dtype(q)
    rows = q.shape[0]
    n_q, n_kv = q.shape[1] // head_dim, k_cache.shape[2] // head_dim
    group = n_q // n_kv
    out = np.empty((rows, n_q, head_dim), dtype=dt)
    per_seq = rows_per_sequence(rows, k_cache)
    for r in range(rows):
        b = r // per_seq
        length = int(positions[r]) + 1
        if not 0 < length <= k_cache.shape[1]:
            raise IndexError(f"position {length - 1} outside the cache of {k_cache.shape[1]} rows")
        qb = _as(q[r], dt).reshape(n_kv, group, head_dim)
        kb = _as(k_cache[b, :length], dt).reshape(length, n_kv, head_dim)
        vb = _as(v_cache[b, :length], dt).reshape(length, n_kv, head_dim)
        scores = np.einsum("kgd,skd->kgs", qb, kb) * dt.type(scale)
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        probs = scores / scores.sum(axis=-1, keepdims=True)
        out[r] = np.einsum("kgs,skd->kgd", probs, vb).reshape(n_q, head_dim)
    return out.reshape(q.shape).astype(q.dtype)


NEG = -1.0e30   # the running max of an empty split (finite: exp2(NEG - NEG) = 1, never NaN)


def split_rows(length: int, split: int, splits: int) -> tuple[int, int]:
    """Cache rows [lo, hi) of split `split` of `splits` over rows 0..length-1."""
    chunk = -(-length // splits)
    return min(split * chunk, length), min((split + 1) * chunk, length)


def attention_partial(q: np.ndarray, k_cache: np.ndarray, v_cache: np.ndarray, positions: np.ndarray,
                      head_dim: int, scale: float, split: int, splits: int) -> np.ndarray:
    """Split-KV decode attention, first half: split `split` of `splits` of the
    cache rows 0..pos[b] (`split_rows`), unnormalized.

    Returns [B, Hq * (D + 4)]: per query head, acc = sum_j 2^(t_j - m) v_j,
    then m = max_j t_j and l = sum_j 2^(t_j - m), where t_j = scale * log2(e)
    * q . k_j (the log2 domain of the GPU kernel), then two zeros of padding.
    An empty split gives acc = 0, m = NEG, l = 0.
    """
    dt = _compute_dtype(q)
    batch = q.shape[0]
    n_q, n_kv = q.shape[1] // head_dim, k_cache.shape[2] // head_dim
    group = n_q // n_kv
    out = np.zeros((batch, n_q, head_dim + 4), dtype=dt)
    out[:, :, head_dim] = NEG
    for b in range(batch):
        length = int(positions[b]) + 1
        if not 0 < length <= k_cache.shape[1]:
            raise IndexError(f"position {length - 1} outside the cache of {k_cache.shape[1]} rows")
        lo, hi = split_rows(length, split, splits)
        if lo == hi:
            continue
        qb = _as(q[b], dt).reshape(n_kv, group, head_dim)
        kb = _as(k_cache[b, lo:hi], dt).reshape(hi - lo, n_kv, head_dim)
        vb = _as(v_cache[b, lo:hi], dt).reshape(hi - lo, n_kv, head_dim)
        t = np.einsum("kgd,skd->kgs", qb, kb) * dt.type(scale / np.log(2.0))
        m = t.max(axis=-1, keepdims=True)
        p = np.exp2(t - m)
        out[b, :, :head_dim] = np.einsum("kgs,skd->kgd", p, vb).reshape(n_q, head_dim)
        out[b, :, head_dim] = m.reshape(n_q)
        out[b, :, head_dim + 1] = p.sum(axis=-1).reshape(n_q)
    return out.reshape(batch, -1)


def attention_combine(partials: np.ndarray, head_dim: int) -> np.ndarray:
    """Split-KV decode attention, second half: partials [B, P, H * (D + 4)] of
    `attention_partial` -> the attention output [B, H * D]."""
    dt = _compute_dtype(partials)
    batch, splits = partials.shape[:2]
    p = _as(partials, dt).reshape(batch, splits, -1, head_dim + 4)
    acc, m, l = p[..., :head_dim], p[..., head_dim], p[..., head_dim + 1]
    w = np.exp2(m - m.max(axis=1, keepdims=True))                  # [B, P, H]
    out = (acc * w[..., None]).sum(axis=1) / (l * w).sum(axis=1)[..., None]
    return out.reshape(batch, -1)


def kv_append(cache: np.ndarray, new: np.ndarray, positions: np.ndarray,
              in_place: bool = False) -> np.ndarray:
    """Write `new[r]` at `cache[r // (R / B), pos[r]]`; returns the updated cache.

    new [R, M] holds R rows over the B sequences of the cache
    (`rows_per_sequence`). Functional by default (a copy), as the graph op has
    value semantics; `in_place=True` is the runtime's behaviour.
    """
    out = cache if in_place else cache.copy()
    per_seq = rows_per_sequence(new.shape[0], cache)
    for r in range(new.shape[0]):
        out[r // per_seq, int(positions[r])] = new[r]
    return out


def silu_mul(gate: np.ndarray, up: np.ndarray) -> np.ndarray:
    """`y = silu(gate) * up = gate * sigmoid(gate) * up`."""
    dt = _compute_dtype(gate)
    g = _as(gate, dt)
    return (g / (1.0 + np.exp(-g)) * _as(up, dt)).astype(gate.dtype)


def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    dt = _compute_dtype(a)
    return (_as(a, dt) + _as(b, dt)).astype(a.dtype)


def allreduce(parts: list[np.ndarray], residual: np.ndarray | None = None) -> np.ndarray:
    """The sum of the ranks' partial values in rank order (every rank adds in the same
    order, so every rank gets the same bits), plus a residual added once."""
    dt = _compute_dtype(parts[0])
    total = np.sum([_as(p, dt) for p in parts], axis=0)
    if residual is not None:
        total = total + _as(residual, dt)
    return total.astype(parts[0].dtype)


def allgather(parts: list[np.ndarray]) -> np.ndarray:
    """The ranks' slices side by side along the last dimension (a vocab-parallel LM head's logits)."""
    return np.concatenate(parts, axis=-1)


def argmax(logits: np.ndarray, index_dtype=np.int32) -> np.ndarray:
    """Index of the largest logit of each row (the first one on ties)."""
    return np.argmax(logits, axis=-1).astype(index_dtype)


def sample(logits: np.ndarray, positions: np.ndarray, params: np.ndarray, seeds: np.ndarray,
           index_dtype=np.int32) -> np.ndarray:
    """One token per row: greedy where the temperature is 0, else drawn from the
    filtered distribution (mpk.sampling has the specification)."""
    from mpk import sampling
    return sampling.sample(np.asarray(logits, np.float32), params, seeds, positions).astype(index_dtype)
