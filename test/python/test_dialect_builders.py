"""The Python builders make every op, and the verifier reports at op locations."""

import dataclasses
import subprocess
import sys
import time

import pytest
from mlir import ir
from mlir.dialects import func

from mpk import dialects as mpk
from mpk import lowering, pipeline
from mpk.diagnostics import Collector
from mpk.dialects import taskir
from mpk.dialects.verify import verify


def bf16(*shape):
    return mpk.tensor(shape, ir.BF16Type.get())


def build_decoder_layer(ctx, batch=2, hidden=32, heads=4, kv_heads=2, head_dim=8, seq=16, vocab=64):
    i32 = ir.IntegerType.get_signless(32)
    module = ir.Module.create()
    with ir.InsertionPoint(module.body):
        @func.FuncOp.from_py_func(mpk.tensor([batch], i32), mpk.tensor([batch], i32), name="decode_step")
        def decode_step(tokens, positions):
            w = lambda name, *shape: mpk.weight(name, bf16(*shape))
            h = mpk.embedding(tokens, w("model.embed_tokens.weight", vocab, hidden))
            x = mpk.rmsnorm(h, w("model.layers.0.input_layernorm.weight", hidden), 1e-6)
            q = mpk.linear(x, w("model.layers.0.self_attn.q_proj.weight", heads * head_dim, hidden))
            k = mpk.linear(x, w("model.layers.0.self_attn.k_proj.weight", kv_heads * head_dim, hidden))
            v = mpk.linear(x, w("model.layers.0.self_attn.v_proj.weight", kv_heads * head_dim, hidden))
            q = mpk.rmsnorm(q, w("model.layers.0.self_attn.q_norm.weight", head_dim), 1e-6)
            inv_freq = [10000.0 ** (-2 * j / head_dim) for j in range(head_dim // 2)]
            q, k = mpk.rope(q, positions, inv_freq), mpk.rope(k, positions, inv_freq)
            kc = mpk.kv_append(mpk.state("layers.0.k_cache", bf16(batch, seq, kv_heads * head_dim)), k, positions)
            vc = mpk.kv_append(mpk.state("layers.0.v_cache", bf16(batch, seq, kv_heads * head_dim)), v, positions)
            a = mpk.attention(q, kc, vc, positions, head_dim, head_dim ** -0.5)
            h = mpk.linear(a, w("model.layers.0.self_attn.o_proj.weight", hidden, heads * head_dim), h)
            g = mpk.linear(h, w("model.layers.0.mlp.gate_proj.weight", 64, hidden))
            u = mpk.linear(h, w("model.layers.0.mlp.up_proj.weight", 64, hidden))
            h = mpk.add(mpk.linear(mpk.silu_mul(g, u), w("model.layers.0.mlp.down_proj.weight", hidden, 64)), h)
            h = mpk.allreduce(h, 1)
            logits = mpk.allgather(mpk.linear(h, w("lm_head.weight", vocab, hidden)), 1)
            f32 = ir.F32Type.get()
            params = mpk.state("sample_params", mpk.tensor([batch, 4], f32))   # any [B, 4] f32 value
            seeds = mpk.argmax(mpk.linear(h, w("seed_head.weight", 8, hidden)))
            return mpk.argmax(logits), logits, mpk.sample(logits, positions, params, seeds)
    return module


def test_every_graph_op_builds_and_verifies(ctx):
    module = build_decoder_layer(ctx)
    assert module.operation.verify()
    assert verify(module)
    names = {op.name for op in module.body.operations[0].regions[0].blocks[0].operations}
    assert {f"mpk.{n}" for n in mpk.GRAPH_OPS} <= names
    # Printed IR parses back to the same text.
    assert str(ir.Module.parse(str(module))) == str(module)


def test_task_ops_build_and_read_back(ctx):
    module = ir.Module.create()
    d1 = ir.AffineMap.get(2, 0, [ir.AffineExpr.get_floor_div(ir.AffineDimExpr.get(1), 2)])
    zero = ir.AffineMap.get(2, 0, [ir.AffineConstantExpr.get(0)])
    with ir.InsertionPoint(module.body):
        mpk.kernel("decode", 132, "sm_90")
        mpk.buffer("x", bf16(1, 64), "workspace", offset=0)
        mpk.buffer("y", bf16(1, 64), "workspace", offset=128)
        mpk.event("e", 2, 2)
        mpk.event("loop", 1, 4, primed=True)
        mpk.tasks("t", "add", [1, 4], [1, 16], ["x", "x"], ["y"], trigger=mpk.event_ref("e", d1))
        mpk.tasks("u", "add", [1, 2], [1, 32], ["y", "y"], ["x"], wait=mpk.event_ref("e", ir.AffineMap.get_minor_identity(2, 1)),
                  trigger=mpk.event_ref("loop", ir.AffineMap.get(2, 0, [ir.AffineConstantExpr.get(0)])))
        mpk.schedule([[0, 1, 4], [2, 3, 5]])
    collector = Collector(ctx)
    ok = verify(module)
    collector.detach()
    # The primed loop event is triggered twice per step but declares 4.
    assert not ok
    assert [d.message for d in collector.diags] == ["event '@loop' index 0 is triggered by 2 task(s) but declares triggers = 4"]
    graph = taskir.TaskGraph.from_module(module)
    assert [g.name for g in graph.groups] == ["t", "u"]
    assert graph.groups[1].first_task == 4
    assert list(graph.groups[0].trigger.indices(graph.groups[0].grid_indices())) == [0, 0, 1, 1]
    assert graph.events["loop"].primed and graph.kernel_attr("num_sms") == 132
    assert graph.groups[0].tile_bounds(3, (1, 64)) == [(0, 1), (48, 64)]
    del zero


def test_verifier_reports_at_the_op_location(ctx):
    src = ('func.func @f(%x: tensor<2x4xf32>, %w: tensor<8x5xf32>) {\n'
           '  %0 = "mpk.linear"(%x, %w) : (tensor<2x4xf32>, tensor<8x5xf32>) -> tensor<2x8xf32>\n'
           '  return\n}\n')
    module = ir.Module.parse(src)
    collector = Collector(ctx)
    assert not verify(module)
    collector.detach()
    (d,) = collector.diags
    assert (d.severity, d.line, d.col) == ("error", 2, 8)
    assert d.message == "weight has 5 input features but x has 4"


@dataclasses.dataclass
class CountOps(lowering.ModulePass):
    """A pass defined in a test: subclassing registers it under its name."""
    name = "test-count-ops"
    summary = "annotate the module with its op count"
    attribute: str = "test.count"
    scale: int = 1
    fail_on: str = ""

    def run(self, module):
        ops = [op.operation for op in module.regions[0].blocks[0].operations]
        for op in ops:
            if self.fail_on and op.name == self.fail_on:
                self.fail(op, f"refusing {op.name}")
        module.attributes[self.attribute] = ir.IntegerAttr.get(ir.IntegerType.get_signless(64), len(ops) * self.scale)


def test_a_new_pass_runs_with_typed_options_among_upstream_passes(ctx):
    assert lowering.lookup("test-count-ops") is CountOps
    module = ir.Module.parse('func.func @f() { return }\nfunc.func @g() { return }')
    pipeline.run(module, "builtin.module(canonicalize,test-count-ops{attribute=test.n scale=3},func.func(cse))")
    assert ir.IntegerAttr(module.operation.attributes["test.n"]).value == 6
    with pytest.raises(pipeline.PipelineError, match="option 'scale' of 'test-count-ops' expects int, got 'x'"):
        pipeline.build("builtin.module(test-count-ops{scale=x})")
    assert CountOps(scale=2).pipeline_element() == "test-count-ops{scale=2}"


def test_a_failing_pass_raises_with_its_diagnostic(ctx):
    module = ir.Module.parse('func.func @f() { return }')
    with pytest.raises(ir.MLIRError) as info:
        pipeline.run(module, "builtin.module(test-count-ops{fail-on=func.func})")
    assert [d.message for d in info.value.error_diagnostics] == ["refusing func.func"]


def test_passes_are_discovered_from_their_files():
    found = lowering.passes()
    assert "mpk-verify" in found
    assert found["mpk-verify"].__module__ == "mpk.lowering.mpk_verify"


def test_mpk_opt_starts_fast_and_without_torch(tmp_path):
    src = tmp_path / "small.mlir"
    src.write_text('func.func @f(%a: tensor<2x4xf32>) -> tensor<2x4xf32> {\n'
                   '  %0 = "mpk.add"(%a, %a) : (tensor<2x4xf32>, tensor<2x4xf32>) -> tensor<2x4xf32>\n'
                   '  return %0 : tensor<2x4xf32>\n}\n')
    probe = ("import sys, runpy; sys.argv = ['mpk-opt', sys.argv[1], '--pass-pipeline=builtin.module(mpk-verify)', "
             "'-o', '/dev/null']\nfrom mpk import opt\nrc = opt.main(sys.argv[1:])\n"
             "assert 'torch' not in sys.modules and 'torch_mlir' not in sys.modules, 'torch was imported'\nsys.exit(rc)")
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", probe, str(src)], check=True)
        best = min(best, time.perf_counter() - start)
    assert best < 1.0, f"mpk-opt took {best:.2f} s on a small file"


def test_every_pass_lives_in_the_file_named_after_it():
    """`grep -r mpk-foo lowering/` and lookup() both rely on mpk-foo living in mpk_foo.py."""
    for name, cls in lowering.passes().items():
        if cls.__module__.startswith("mpk.lowering."):
            assert cls.__module__ == "mpk.lowering." + name.replace("-", "_"), name
