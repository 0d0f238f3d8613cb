"""PyTorch decode step -> torch dialect (torch-mlir) -> mpk graph IR.

The model is built on the meta device, so no weight is ever allocated: a
qwen3-8b import needs the memory of its graph, not of its 16 GB of weights.
`torch.export` lifts parameters and buffers out of the graph; torch-mlir's
FX importer asks `_NamedStateHooks.resolve_input` for each of them, and we
answer with a `torch.mpk.weight` / `torch.mpk.state` op carrying the Hugging
Face name (an unregistered op in torch-mlir's context), so names survive into
IR and no literal is materialized.

torch-mlir carries its own MLIR (LLVM 24) whose torch ops the main `mlir`
bindings (LLVM 22) cannot parse in pretty form: the module crosses over as
GENERIC text with debug locations, parsed with unregistered dialects allowed;
then the `torch-to-mpk` pass rewrites it into mpk graph ops.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from pathlib import Path
from typing import Callable

from mpk.defaults import DTYPES   # element types of weights, activations and KV caches (re-exported)
from mpk.models import ModelConfig, rope_inv_freq

# The decode step's function name in IR (dialects/README.md).
FUNC_NAME = "decode_step"
# Placeholders for lifted parameters and buffers in torch-dialect IR, carrying
# their names; torch-to-mpk turns them into mpk.weight / mpk.state. They live in
# the torch namespace because the real mpk ops verify builtin tensor types.
WEIGHT_OP, STATE_OP = "torch.mpk.weight", "torch.mpk.state"


def state_name(fqn: str) -> str:
    """KV cache buffer FQN -> state name: model.layers.0.self_attn.k_cache -> layers.0.k_cache."""
    return fqn.removeprefix("model.").replace(".self_attn.", ".")


def export_decode_step(config: ModelConfig, batch: int, max_seq: int, dtype: str = "float32"):
    """`torch.export` of the decode step of a meta-device model (no weights allocated).

    `dtype` is that of weights, activations and KV caches (one of DTYPES).
    """
    import torch
    from mpk.models import Decoder

    with torch.device("meta"):
        model = Decoder(config).to(getattr(torch, dtype))
        model.setup_caches(batch, max_seq)
        tokens = torch.zeros(batch, dtype=torch.int64)
        positions = torch.zeros(batch, dtype=torch.int64)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)  # torch's own pytree deprecations
        program = torch.export.export(model, (tokens, positions), strict=False)
        # Functionalize (in-place cache writes become index_put + buffer mutation)
        # without decomposing: rms_norm, linear and SDPA stay whole.
        return program.run_decompositions({})


_FRAME = re.compile(r'^\s*File "([^"]+)", line \d+.*(?:\n(?!\s*File ").*)*', re.MULTILINE)


def _keep_user_frames(program) -> None:
    """Drop PyTorch's own frames from each node's stack trace.

    torch-mlir turns the stack trace into the op's location (innermost frame
    first, callers as call sites); without torch's frames the location reads
    as the model's source line, which is what an error should point at.
    """
    import torch
    torch_dir = str(Path(torch.__file__).parent)
    for node in program.graph.nodes:
        trace = node.meta.get("stack_trace")
        if trace:
            frames = [m.group(0) for m in _FRAME.finditer(trace)]
            user = [f for f in frames if torch_dir not in _FRAME.match(f).group(1)]
            node.meta["stack_trace"] = "\n".join(user or frames) + "\n"


def _torch_mlir_hooks(config: ModelConfig):
    from torch_mlir import ir as tir
    from torch_mlir.extras.fx_importer import FxImporterHooks
    from torch.export.graph_signature import InputKind
    import numpy as np

    class _NamedStateHooks(FxImporterHooks):
        def resolve_input(self, gni, value, info):
            target = info.input_spec.target
            if info.input_spec.kind == InputKind.PARAMETER:
                return _named(gni, WEIGHT_OP, target, info.ir_type)
            if target == "inv_freq":
                # Derived from the config: the frequencies the model's own rope code computes.
                # A plain dense attribute (not a dense_resource blob), so the text is self-contained.
                values = np.array(rope_inv_freq(config), dtype=np.float32)
                return tir.Operation.create("torch.vtensor.literal", results=[info.ir_type], attributes={
                    "value": tir.DenseElementsAttr.get(values)}).result
            return _named(gni, STATE_OP, state_name(target), info.ir_type)

        def store_produced_value(self, gni, py_value, produced_ir_value, info):
            # The cache update is the producing op itself (index_put on the
            # mpk.state value); torch-to-mpk turns it into mpk.kv_append.
            pass

    def _named(gni, op_name: str, name: str, type) -> "tir.Value":
        return tir.Operation.create(op_name, results=[type],
                                    attributes={"name": tir.StringAttr.get(name)}).result

    return _NamedStateHooks()


def import_torch_dialect(program, config: ModelConfig) -> str:
    """An ExportedProgram -> the torch-dialect module as generic MLIR text with locations."""
    from torch_mlir import ir as tir
    from torch_mlir.dialects import torch as torch_d
    from torch_mlir.extras.fx_importer import FxImporter

    context = tir.Context()
    torch_d.register_dialect(context)
    context.allow_unregistered_dialects = True  # for mpk.weight / mpk.state
    importer = FxImporter(context=context, hooks=_torch_mlir_hooks(config))
    _keep_user_frames(program)
    importer.import_program(program, func_name=FUNC_NAME)
    return importer.module.operation.get_asm(print_generic_op_form=True, enable_debug_info=True,
                                             large_elements_limit=None)


def parse_torch_dialect(text: str, context=None):
    """Generic torch-dialect text -> module in the main (LLVM 22) MLIR context."""
    from mlir import ir
    from mpk import dialects

    context = context or dialects.context()
    context.allow_unregistered_dialects = True
    with context:
        return ir.Module.parse(text)


class FrontendError(Exception):
    """Conversion failed; `diagnostics` holds the MLIR diagnostics (mpk.diagnostics.Diag)."""

    def __init__(self, diagnostics):
        from mpk.diagnostics import format_diag
        self.diagnostics = [d for d in diagnostics if not d.message.startswith("see current operation")]
        super().__init__("\n".join(format_diag(d, "<torch>") for d in self.diagnostics))


def to_mpk(module) -> None:
    """Run `torch-to-mpk` on a parsed torch-dialect module (in place).

    Raises FrontendError carrying the pass's diagnostics (e.g. an unsupported
    aten op at the model's source line).
    """
    from mlir import passmanager
    from mpk.diagnostics import Collector
    from mpk.lowering import lookup

    collector = Collector(module.context)
    try:
        with module.context, collector.catching():
            pm = passmanager.PassManager()
            torch_to_mpk = lookup("torch-to-mpk")()
            pm.add(torch_to_mpk, name=torch_to_mpk.name)
            pm.run(module.operation)
    finally:
        collector.detach()
    if collector.has_errors:
        raise FrontendError(collector.diags)
    module.context.allow_unregistered_dialects = False


def import_model(config: ModelConfig, batch: int = 1, max_seq: int = 4096, dtype: str = "float32",
                 progress: Callable[[str], contextlib.AbstractContextManager] | None = None):
    """The decode step of `config` as an mpk graph-IR module (main MLIR context).

    `progress(step_name)` is entered around each slow step (export, torch-mlir
    import, conversion), e.g. to show a spinner.
    """
    step = progress or (lambda _name: contextlib.nullcontext())
    with step("torch.export"):
        program = export_decode_step(config, batch, max_seq, dtype)
    with step("torch-mlir import"):
        text = import_torch_dialect(program, config)
    with step("torch-to-mpk"):
        module = parse_torch_dialect(text)
        to_mpk(module)
    return module
