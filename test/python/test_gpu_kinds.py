"""Every task kind alone on the GPU against a PyTorch fp32 reference.

Runs the prebuilt `.bundles/kinds/` (made on the compiling machine by
`python test/python/kind_cases.py .bundles/kinds`: MLIR is not needed here):
one launch of the test kernel per group, one CTA per task. Inputs are fresh
random numbers on every run, outputs are poisoned (NaN / -1) before the launch,
and the relative error ||out - ref|| / ||ref|| must stay under 1e-2. The
`bench_linear_*` groups are timed against `x @ w.T` for read bandwidth.

    python -m pytest test/python/test_gpu_kinds.py -s
"""

from __future__ import annotations

import ctypes
import json
import math
from pathlib import Path

import numpy as np

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.gpu

BUNDLE = Path(__file__).resolve().parents[2] / ".bundles" / "kinds"
STEPS = 2  # copies of a per_step buffer; the launch runs step 1
TOLERANCE = 1e-2

if not torch.cuda.is_available():
    pytest.skip("no CUDA GPU", allow_module_level=True)
if not (BUNDLE / "kinds.cubin").exists():
    pytest.skip(f"no prebuilt kinds in {BUNDLE} (run test/python/kind_cases.py)",
                allow_module_level=True)


# ------------------------------------------------------------------ launcher

class Kinds:
    """The test kernel of each program (its own shared-memory budget), loaded once."""

    def __init__(self, folder: Path):
        from cuda.bindings import driver as cu
        self.cu = cu
        self.meta = json.loads((folder / "kinds.json").read_text())
        torch.zeros(1, device="cuda")  # torch creates the primary context; share it
        _ok(cu.cuInit(0))
        ctx = _ok(cu.cuDevicePrimaryCtxRetain(_ok(cu.cuDeviceGet(torch.cuda.current_device()))))
        _ok(cu.cuCtxSetCurrent(ctx))
        self.programs = {}
        for name, program in self.meta["programs"].items():
            module = _ok(cu.cuModuleLoadData((folder / program["cubin"]).read_bytes()))
            kernel = _ok(cu.cuModuleGetFunction(module, b"run_group"))
            smem = program["smem_bytes"] + program["ring_bytes"]
            _ok(cu.cuFuncSetAttribute(
                kernel, cu.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, smem))
            self.programs[name] = (module, kernel, program["smem_bytes"], smem, program.get("threads", 512))
        self.groups = {g["name"]: g for g in self.meta["groups"]}
        self._maps = []   # device copies of encoded tensor maps, alive as long as this object

    def table(self, tensors: list, group: dict | None = None):
        """The buffer-address table of a group: inputs..., outputs..., then the
        addresses of the TMA descriptors the group's tensor maps ask for."""
        addresses = [t.data_ptr() for t in tensors]
        if group is not None and group.get("tensor_maps"):
            from mpk.runtime.loader import encode_tensor_map
            buffers = group["inputs"] + group["outputs"]
            raw = b"".join(encode_tensor_map(addresses[i], {"name": buffers[i][0], "shape": list(buffers[i][1]),
                                                            "dtype": buffers[i][2]}, (rows, cols))
                           for i, rows, cols in group["tensor_maps"])
            maps = torch.frombuffer(bytearray(raw), dtype=torch.uint8).cuda()
            self._maps.append(maps)
            addresses += [maps.data_ptr() + 128 * k for k in range(len(group["tensor_maps"]))]
        return torch.tensor(addresses, dtype=torch.int64, device="cuda")

    def launch(self, group: dict, table, step: int = 0) -> None:
        _, kernel, scratch, smem, threads = self.programs[group.get("program", "decode")]
        stage = group.get("stage") or [0, 0, 0, 0, 0]   # a staged linear or gate_up: its rows copied first
        args = ((group["fn"], group["tasks"], step, table.data_ptr(), scratch, *stage),
                (ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p) + (ctypes.c_int,) * 6)
        _ok(self.cu.cuLaunchKernel(kernel, group["tasks"], 1, 1, threads, 1, 1, smem, 0, args, 0))


def _ok(result):
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise RuntimeError(f"CUDA driver error {err}")
    return rest[0] if len(rest) == 1 else (tuple(rest) if rest else None)


@pytest.fixture(scope="module")
def kinds():
    return Kinds(BUNDLE)


# ---------------------------------------------------------------- references

def ref_embedding(p, ids, table):
    return [table.float()[ids.long()]]


def ref_rmsnorm(p, x, w):
    D = w.numel()
    xf = x.float().view(x.shape[0], -1, D)
    y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + p["eps"]) * w.float()
    return [y.view(x.shape)]


def ref_linear(p, x, w, *rest):
    """x, w, [residual], [norm weight if norm_eps], [up if silu_gate]: the fused
    layer norm or silu_mul first, rounded as the unfused op stores it."""
    if "silu_gate" in p:
        *rest, up = rest
        x = ref_silu_mul(p, x, up)[0].to(x.dtype)
    if "norm_eps" in p:
        *rest, nw = rest
        (x,) = ref_rmsnorm({"eps": p["norm_eps"]}, x, nw)
    r = rest[0] if rest else None
    y = x.float() @ w.float().t()
    return [y if r is None else y + r.float()]


def ref_gate_up(p, x, wg, wu, *norm):
    """silu(x @ wg^T) * (x @ wu^T), x normalized first with `norm_eps` (decode rows)."""
    return ref_silu_mul(p, ref_linear(p, x, wg, *norm)[0], ref_linear(p, x, wu, *norm)[0])


def ref_rope(p, x, pos):
    inv = torch.tensor(p["inv_freq"], dtype=torch.float32, device=x.device)
    D = 2 * inv.numel()
    angle = pos.float()[:, None] * inv[None, :]
    cos, sin = angle.cos()[:, None, :], angle.sin()[:, None, :]
    xf = x.float().view(x.shape[0], -1, D)
    a, b = xf[..., :D // 2], xf[..., D // 2:]
    return [torch.cat([a * cos - b * sin, b * cos + a * sin], -1).view(x.shape)]


def ref_attention(p, q, kc, vc, pos):
    """Row r (sequence r // (R / B)) over its cache rows 0..pos[r]."""
    D, out = p["head_dim"], []
    per_seq = q.shape[0] // kc.shape[0]
    for r in range(q.shape[0]):
        L, b = int(pos[r]) + 1, r // per_seq
        qh = q[r].float().view(-1, D)
        k = kc[b, :L].float().view(L, -1, D)
        v = vc[b, :L].float().view(L, -1, D)
        G = qh.shape[0] // k.shape[1]
        k, v = k.repeat_interleave(G, dim=1), v.repeat_interleave(G, dim=1)
        att = torch.softmax(torch.einsum("hd,lhd->hl", qh, k) * p["scale"], -1)
        out.append(torch.einsum("hl,lhd->hd", att, v).reshape(-1))
    return [torch.stack(out)]


def ref_attention_partial(p, q, *rest):
    """Split `s` of the rows 0..pos[b]: (acc, max, sum) in the log2 domain, D + 4 floats per head.
    With `inv_freq`, q and k come before QK-norm and rope (`rope_append`, then the caches are
    outputs too)."""
    if "inv_freq" in p:
        k, v, kc, vc, pos, *norms = rest
        q, kc, vc = (t.to(k.dtype) for t in ref_rope_append(p, q, k, v, kc, vc, pos, *norms))
        return ref_attention_partial({n: x for n, x in p.items() if n != "inv_freq"}, q, kc, vc, pos) + [kc, vc]
    kc, vc, pos = rest
    D, P = p["head_dim"], p["splits"]
    B, Hq = q.shape[0], q.shape[1] // D
    out = torch.zeros(B, P, Hq, D + 4, dtype=torch.float64, device=q.device)
    out[..., D] = -1.0e30
    for b in range(B):
        L = int(pos[b]) + 1
        chunk = -(-L // P)
        for s in range(P):
            lo, hi = min(s * chunk, L), min((s + 1) * chunk, L)
            if lo == hi:
                continue
            qh = q[b].double().view(Hq, D)
            k = kc[b, lo:hi].double().view(hi - lo, -1, D).repeat_interleave(Hq // (kc.shape[2] // D), 1)
            v = vc[b, lo:hi].double().view(hi - lo, -1, D).repeat_interleave(Hq // (kc.shape[2] // D), 1)
            t = torch.einsum("hd,lhd->hl", qh, k) * p["scale"] / math.log(2)
            m = t.max(-1).values
            e = torch.exp2(t - m[:, None])
            out[b, s, :, :D] = torch.einsum("hl,lhd->hd", e, v)
            out[b, s, :, D], out[b, s, :, D + 1] = m, e.sum(-1)
    return [out.view(B, P, -1)]


def ref_attention_split(p, q, *rest):
    """The partials (and caches), their merge, and the arrival counters back at zero."""
    partials, *caches = ref_attention_partial(p, q, *rest)
    kv_heads = (rest[0] if "inv_freq" not in p else rest[2]).shape[2] // p["head_dim"]
    return [partials, *caches, *ref_attention_combine(p, partials), torch.zeros(q.shape[0], kv_heads)]


def ref_attention_combine(p, partials):
    D = p["head_dim"]
    B, P = partials.shape[:2]
    x = partials.double().view(B, P, -1, D + 4)
    w = torch.exp2(x[..., D] - x[..., D].max(1, keepdim=True).values)
    return [((x[..., :D] * w[..., None]).sum(1) / (x[..., D + 1] * w).sum(1)[..., None]).view(B, -1)]


def ref_kv_append(p, cache, new, pos):
    out = cache.float().clone()
    per_seq = new.shape[0] // cache.shape[0]
    for r in range(new.shape[0]):
        out[r // per_seq, int(pos[r])] = new[r].float()
    return [out]


ref_attention_prefill = ref_attention


def ref_rope_append(p, q, k, v, kc, vc, pos, *norms):
    """q and k normalized (with norm weights; rounded as rmsnorm stores them) and
    rotated; k and v appended at row pos[b]."""
    if norms:
        q, k = (ref_rmsnorm({"eps": p["eps"]}, t, w)[0].to(t.dtype) for t, w in zip((q, k), norms))
    q, k = (ref_rope(p, t, pos)[0] for t in (q, k))
    return [q, ref_kv_append(p, kc, k, pos)[0], ref_kv_append(p, vc, v, pos)[0]]


def ref_silu_mul(p, gate, up):
    return [torch.nn.functional.silu(gate.float()) * up.float()]


def ref_add(p, a, b):
    return [a.float() + b.float()]


REFERENCES = {k[4:]: f for k, f in globals().items() if k.startswith("ref_")}


# --------------------------------------------------------------------- data

DTYPES = {"bf16": torch.bfloat16, "f32": torch.float32, "i32": torch.int32, "i64": torch.int64}
POSITIONS = ("pos", "positions")


def _buffers(group):
    seen = {}
    for b in group["inputs"] + group["outputs"]:
        seen.setdefault(b[0], b)
    return seen


def _fresh(group, gen):
    """Random inputs and poisoned outputs; positions fit the caches (a chunk of
    consecutive positions per sequence where the group's setup says `chunk`)."""
    cache_len = min((b[1][1] for b in group["inputs"] if b[3] == "state"), default=32768)
    sequences = min((b[1][0] for b in group["inputs"] if b[3] == "state"), default=1)
    inputs = {b[0] for b in group["inputs"]}
    setup = group.get("setup") or {}
    data = {}
    for name, shape, dtype, space in _buffers(group).values():
        shape = ([STEPS] if space == "io_per_step" else []) + list(shape)
        dt = DTYPES[dtype]
        if name in POSITIONS and setup.get("positions") == "chunk":
            chunk = shape[0] // sequences
            starts = torch.randint(0, cache_len - chunk + 1, (sequences,), generator=gen)
            t = (starts[:, None] + torch.arange(chunk)[None, :]).reshape(shape).to(dt)
        elif name in POSITIONS:
            t = torch.randint(1, cache_len, shape, generator=gen).to(dt)
        elif name == "sample_params":
            t = torch.tensor(setup["sampling"], dtype=dt).expand(shape).contiguous()
        elif name == "sample_seeds":
            t = torch.arange(shape[0], dtype=dt) * 7919 + torch.randint(0, 2**20, (1,), generator=gen).to(dt)
        elif space == "counters":  # zero before a step, as the runtime keeps them
            t = torch.zeros(shape, dtype=dt)
        elif name not in inputs:  # poisoned: every element must be written
            t = torch.full(shape, -1 if not dt.is_floating_point else float("nan"), dtype=dt)
        elif name == "partials":  # as attention_partial writes them: a positive sum per head
            t = torch.randn(shape, generator=gen).to(dt)
            sums = t.view(*shape[:2], -1, group["params"]["head_dim"] + 4)[..., -3]
            sums.copy_(sums.abs() + 0.5)
        elif not dt.is_floating_point:  # token ids
            vocab = group["inputs"][1][1][0]
            t = torch.randint(0, vocab, shape, generator=gen).to(dt)
        elif setup.get("shared_logits") and name == "logits":   # one distribution, many draws
            t = (setup.get("scale", 1.0) * torch.randn(shape[-1], generator=gen)).expand(shape).to(dt)
        else:
            t = (setup.get("scale", 1.0) * torch.randn(shape, generator=gen)).to(dt)
        data[name] = t.contiguous().cuda()
    return data


def _relative_error(out, ref):
    out, ref = out.double(), ref.double()
    return float((out - ref).norm() / ref.norm())


# --------------------------------------------------------------------- tests

GROUPS = json.loads((BUNDLE / "kinds.json").read_text())["groups"]
CHECKED = [c for c in GROUPS if not c["bench"]]
BENCH = [c for c in GROUPS if c["bench"]]


@pytest.mark.parametrize("name", [c["name"] for c in CHECKED])
def test_kind(kinds, name):
    group = kinds.groups[name]
    gen = torch.Generator().manual_seed(torch.seed() % 2**31)
    data = _fresh(group, gen)
    before = {n: t.clone() for n, t in data.items()}  # the in-place kinds overwrite inputs
    spaces = {b[0]: b[3] for b in group["inputs"] + group["outputs"]}

    def value(tensors, n):  # a per-step buffer's copy of step 1
        return tensors[n][1] if spaces[n] == "io_per_step" else tensors[n]

    kinds.launch(group, kinds.table([data[b[0]] for b in group["inputs"] + group["outputs"]], group),
                 step=1)
    torch.cuda.synchronize()
    inputs = [value(before, b[0]) for b in group["inputs"]]
    if group["kind"] in ("sample", "sample_split"):
        for out in group["outputs"]:
            if spaces[out[0]] == "counters":
                assert not data[out[0]].any(), f"{out[0]} not reset for the next step"
        return _check_sample(name, group, inputs, value(data, "next_tokens"), data, before)
    if group["kind"] == "argmax":
        token = inputs[0].float().argmax(-1)
        for out in group["outputs"]:
            got = value(data, out[0]).long().cpu()
            if out[0] in POSITIONS:
                assert torch.equal(got, value(before, out[0]).long().cpu() + 1), out[0]
            else:
                assert torch.equal(got, token.cpu()), (out[0], got, token)
        if "pos" in data:
            assert torch.equal(data["pos"].cpu(), before["pos"].cpu() + 1)
        print(f"{name:18s} tokens exact, positions advanced")
        return
    refs = REFERENCES[group["kind"]](group["params"], *inputs)
    for out, ref in zip(group["outputs"], refs):
        got = value(data, out[0])
        if spaces[out[0]] == "counters":
            assert torch.equal(got.cpu().long(), ref.long()), (out[0], got)
            continue
        assert not got.float().isnan().any(), "some outputs were not written"
        err = _relative_error(got, ref)
        print(f"{name:18s} relative error {err:.2e}")
        assert err < TOLERANCE


def _check_sample(name, group, inputs, got, data, before):
    """Greedy rows: the argmax. Sampled rows: mpk.sampling's token (the same draw
    but for float32 rounding at near-ties: at most 1 row in 8 may differ). Many
    draws of one distribution (shared logits): a chi-square test against
    mpk.sampling.probabilities, and no token outside the kept set."""
    from mpk import sampling
    logits, positions, params, seeds = (t.float().cpu().numpy() if t.is_floating_point() else t.cpu().numpy()
                                        for t in inputs)
    got = got.long().cpu().numpy()
    assert torch.equal(data["positions"].cpu(), before["positions"].cpu() + 1), "positions not advanced"
    if group["setup"].get("shared_logits"):
        p = sampling.probabilities(logits[0], *params[0])
        counts = np.bincount(got, minlength=p.size)
        assert counts[p == 0].sum() == 0, f"tokens outside the kept set: {np.flatnonzero(counts * (p == 0))}"
        stat, dof, pvalue = _chi_square(counts, p)
        print(f"{name:28s} {got.size} draws over {int((p > 0).sum())} kept tokens: chi2 {stat:.1f}, "
              f"dof {dof}, p = {pvalue:.3g}")
        assert pvalue > 1e-4
        return
    want = sampling.sample(logits, params, seeds.astype(np.uint32), positions)
    greedy = params[:, 0] <= 0
    np.testing.assert_array_equal(got[greedy], logits[greedy].argmax(-1))
    differ = int((got != want).sum())
    print(f"{name:28s} {int(greedy.sum())} greedy rows exact, {differ} of {got.size} rows differ from mpk.sampling")
    assert differ <= max(1, got.size // 8)


def _chi_square(counts, p):
    """(statistic, degrees of freedom, p-value) of counts against probabilities p,
    bins with an expected count under 5 pooled."""
    import math as m
    expected = p * counts.sum()
    keep = expected >= 5
    obs = np.append(counts[keep], counts[~keep].sum())
    exp = np.append(expected[keep], expected[~keep].sum())
    obs, exp = obs[exp > 0], exp[exp > 0]
    stat = float(((obs - exp) ** 2 / exp).sum())
    dof = len(obs) - 1
    # Wilson-Hilferty: (chi2 / k)^(1/3) is nearly normal.
    z = ((stat / dof) ** (1 / 3) - (1 - 2 / (9 * dof))) / m.sqrt(2 / (9 * dof))
    return stat, dof, 0.5 * m.erfc(z / m.sqrt(2))


@pytest.mark.parametrize("name", [c["name"] for c in BENCH if c["kind"] in ("linear", "gate_up")
                                  and c["program"] != "decode"])
def test_gemm_throughput(kinds, name):
    """A GEMM tile group over all its tiles (one CTA per tile, as the persistent kernel
    runs them), against torch's matmul (a gate_up: two and the SiLU product): TFLOP/s."""
    group = kinds.groups[name]
    (_, (R, K), _, _), (_, (N, _), _, _) = group["inputs"][:2]
    weights = len(group["inputs"]) - 1
    x = torch.randn(R, K, device="cuda").to(torch.bfloat16)
    ws = [torch.randn(N, K, device="cuda").to(torch.bfloat16) / K ** 0.5 for _ in range(weights)]
    y = torch.full((R, N), float("nan"), device="cuda", dtype=torch.bfloat16)
    table = kinds.table([x, *ws, y], group)
    kinds.launch(group, table)
    torch.cuda.synchronize()
    ref = REFERENCES[group["kind"]](group["params"], x, *ws)[0]
    err = _relative_error(y, ref)
    assert err < TOLERANCE
    w = torch.cat(ws)                    # torch: one matmul of the same weights

    def timed(fn, reps=20):
        for _ in range(3):
            fn()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(reps):
            fn()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / reps / 1e3

    flops = 2 * R * N * K * weights
    ours = timed(lambda: kinds.launch(group, table))
    theirs = timed(lambda: x @ w.t())
    print(f"{name:28s} rel err {err:.1e}  mpk {flops / ours / 1e12:6.0f} TFLOP/s ({ours * 1e6:7.1f} us)  "
          f"torch {flops / theirs / 1e12:6.0f} TFLOP/s ({theirs * 1e6:7.1f} us)  on {torch.cuda.get_device_name()}")


@pytest.mark.parametrize("name", [c["name"] for c in BENCH if c["kind"] == "linear" and c["program"] == "decode"])
def test_linear_bandwidth(kinds, name):
    group = kinds.groups[name]
    (_, (B, K), _, _), (_, (N, _), _, _) = group["inputs"]
    wbytes = N * K * 2
    copies = max(1, math.ceil(512e6 / wbytes))  # cycle through > L2 of weights
    x = torch.randn(B, K, device="cuda").to(torch.bfloat16)
    ws = [torch.randn(N, K, device="cuda").to(torch.bfloat16) for _ in range(copies)]
    y = torch.full((B, N), float("nan"), device="cuda", dtype=torch.bfloat16)
    tables = [kinds.table([x, w, y]) for w in ws]
    kinds.launch(group, tables[0])
    torch.cuda.synchronize()
    err = _relative_error(y, x.float() @ ws[0].float().t())
    assert err < TOLERANCE

    def timed(fn, reps=30):
        for i in range(5):
            fn(i)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for i in range(reps):
            fn(i)
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / reps / 1e3

    ours = timed(lambda i: kinds.launch(group, tables[i % copies]))
    theirs = timed(lambda i: x @ ws[i % copies].t())
    print(f"{name:28s} rel err {err:.1e}  mpk {wbytes / ours / 1e9:7.0f} GB/s "
          f"({ours * 1e6:7.1f} us)  torch {wbytes / theirs / 1e9:7.0f} GB/s "
          f"({theirs * 1e6:7.1f} us)  on {torch.cuda.get_device_name()}")


@pytest.mark.parametrize("name", [c["name"] for c in BENCH if c["kind"] in ("attention", "attention_partial")])
def test_attention_bandwidth(kinds, name):
    group = kinds.groups[name]
    gen = torch.Generator().manual_seed(1)
    data = _fresh(group, gen)
    S = data["kc"].shape[1]
    data["pos"].fill_(S - 1)  # the whole cache
    order = [data[b[0]] for b in group["inputs"] + group["outputs"]]
    table = kinds.table(order)
    kinds.launch(group, table)
    torch.cuda.synchronize()
    (ref,) = REFERENCES[group["kind"]](group["params"], *order[:4])
    err = _relative_error(order[4], ref)
    assert err < TOLERANCE
    kv_bytes = 2 * data["kc"].numel() * 2
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    for _ in range(3):
        kinds.launch(group, table)
    start.record()
    for _ in range(20):
        kinds.launch(group, table)
    end.record()
    torch.cuda.synchronize()
    t = start.elapsed_time(end) / 20 / 1e3
    print(f"{name:28s} rel err {err:.1e}  {group['tasks']} tasks  KV {kv_bytes / 1e6:.0f} MB "
          f"in {t * 1e6:.1f} us = {kv_bytes / t / 1e9:.0f} GB/s")
