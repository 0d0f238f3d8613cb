// The mpk dialect, declared in IRDL and loaded at run time (mpk.dialects.load).
//
// IRDL checks structure: operand and result counts, that operands are builtin
// tensors, that required attributes are present and of the right base kind.
// What IRDL cannot say (shapes agree, event indices in range, trigger counts,
// acyclic event graph) is checked by mpk.dialects.verify, run by `mpk-opt`
// after parsing and by the `mpk-verify` pass. Each constraint value is its own
// variable: IRDL makes two uses of one variable equal.
// Op-by-op documentation: dialects/README.md.

irdl.dialect @mpk {

  // ---------------------------------------------------------------- graph level

  irdl.operation @weight {
    %name = irdl.base "#builtin.string"
    irdl.attributes {"name" = %name}
    %r = irdl.base "!builtin.tensor"
    irdl.results(result: %r)
  }

  irdl.operation @state {
    %name = irdl.base "#builtin.string"
    irdl.attributes {"name" = %name}
    %r = irdl.base "!builtin.tensor"
    irdl.results(result: %r)
  }

  irdl.operation @embedding {
    %ids = irdl.base "!builtin.tensor"
    %table = irdl.base "!builtin.tensor"
    irdl.operands(ids: %ids, table: %table)
    %r = irdl.base "!builtin.tensor"
    irdl.results(result: %r)
  }

  irdl.operation @rmsnorm {
    %x = irdl.base "!builtin.tensor"
    %w = irdl.base "!builtin.tensor"
    irdl.operands(x: %x, weight: %w)
    %eps = irdl.base "#builtin.float"
    irdl.attributes {"eps" = %eps}
    %r = irdl.base "!builtin.tensor"
    irdl.results(result: %r)
  }

  irdl.operation @linear {
    %x = irdl.base "!builtin.tensor"
    %w = irdl.base "!builtin.tensor"
    %res = irdl.base "!builtin.tensor"
    irdl.operands(x: %x, weight: %w, residual: optional %res)
    %r = irdl.base "!builtin.tensor"
    irdl.results(result: %r)
  }

  irdl.operation @rope {
    %x = irdl.base "!builtin.tensor"
    %pos = irdl.base "!builtin.tensor"
    irdl.operands(x: %x, positions: %pos)
    %f = irdl.base "#builtin.dense_array"
    irdl.attributes {"inv_freq" = %f}
    %r = irdl.base "!builtin.tensor"
    irdl.results(result: %r)
  }

  irdl.operation @attention {
    %q = irdl.base "!builtin.tensor"
    %k = irdl.base "!builtin.tensor"
    %v = irdl.base "!builtin.tensor"
    %pos = irdl.base "!builtin.tensor"
    irdl.operands(q: %q, k_cache: %k, v_cache: %v, positions: %pos)
    %hd = irdl.base "#builtin.integer"
    %scale = irdl.base "#builtin.float"
    irdl.attributes {"head_dim" = %hd, "scale" = %scale}
    %r = irdl.base "!builtin.tensor"
    irdl.results(result: %r)
  }

  irdl.operation @kv_append {
    %cache = irdl.base "!builtin.tensor"
    %new = irdl.base "!builtin.tensor"
    %pos = irdl.base "!builtin.tensor"
    irdl.operands(cache: %cache, new: %new, positions: %pos)
    %r = irdl.base "!builtin.tensor"
    irdl.results(result: %r)
  }

  irdl.operation @silu_mul {
    %g = irdl.base "!builtin.tensor"
    %u = irdl.base "!builtin.tensor"
    irdl.operands(gate: %g, up: %u)
    %r = irdl.base "!builtin.tensor"
    irdl.results(result: %r)
  }

  irdl.operation @add {
    %a = irdl.base "!builtin.tensor"
    %b = irdl.base "!builtin.tensor"
    irdl.operands(lhs: %a, rhs: %b)
    %r = irdl.base "!builtin.tensor"
    irdl.results(result: %r)
  }

  // The sum of x over the `ranks` ranks of a tensor-parallel step (mpk-shard), plus
  // the residual once.
  irdl.operation @allreduce {
    %x = irdl.base "!builtin.tensor"
    %res = irdl.base "!builtin.tensor"
    irdl.operands(x: %x, residual: optional %res)
    %n = irdl.base "#builtin.integer"
    irdl.attributes {"ranks" = %n}
    %r = irdl.base "!builtin.tensor"
    irdl.results(result: %r)
  }

  // The ranks' x side by side along the last dimension (a vocab-parallel LM head).
  irdl.operation @allgather {
    %x = irdl.base "!builtin.tensor"
    irdl.operands(x: %x)
    %n = irdl.base "#builtin.integer"
    irdl.attributes {"ranks" = %n}
    %r = irdl.base "!builtin.tensor"
    irdl.results(result: %r)
  }

  irdl.operation @argmax {
    %x = irdl.base "!builtin.tensor"
    irdl.operands(logits: %x)
    %r = irdl.base "!builtin.tensor"
    irdl.results(result: %r)
  }

  irdl.operation @sample {
    %x = irdl.base "!builtin.tensor"
    %pos = irdl.base "!builtin.tensor"
    %params = irdl.base "!builtin.tensor"
    %seeds = irdl.base "!builtin.tensor"
    irdl.operands(logits: %x, positions: %pos, params: %params, seeds: %seeds)
    %r = irdl.base "!builtin.tensor"
    irdl.results(result: %r)
  }

  // ----------------------------------------------------------------- task level
  // Task-level ops live directly in a builtin.module, which is their symbol
  // table: IRDL cannot declare a terminator or NoTerminator trait, so an IRDL
  // op cannot own a single-block region of symbols. `mpk.kernel` is the header.

  irdl.operation @kernel {
    %name = irdl.base "#builtin.string"
    %sms = irdl.base "#builtin.integer"
    %arch = irdl.base "#builtin.string"
    irdl.attributes {"sym_name" = %name, "num_sms" = %sms, "arch" = %arch}
  }

  irdl.operation @buffer {
    %name = irdl.base "#builtin.string"
    %type = irdl.base "#builtin.type"
    %space = irdl.base "#builtin.string"
    irdl.attributes {"sym_name" = %name, "type" = %type, "space" = %space}
  }

  irdl.operation @event {
    %name = irdl.base "#builtin.string"
    %size = irdl.base "#builtin.integer"
    %triggers = irdl.base "#builtin.integer"
    irdl.attributes {"sym_name" = %name, "size" = %size, "triggers" = %triggers}
  }

  irdl.operation @tasks {
    %name = irdl.base "#builtin.string"
    %kind = irdl.base "#builtin.string"
    %grid = irdl.base "#builtin.dense_array"
    %tile = irdl.base "#builtin.dense_array"
    %ins = irdl.base "#builtin.array"
    %outs = irdl.base "#builtin.array"
    irdl.attributes {"sym_name" = %name, "kind" = %kind, "grid" = %grid,
                     "tile" = %tile, "inputs" = %ins, "outputs" = %outs}
  }

  irdl.operation @schedule {
    %queues = irdl.base "#builtin.array"
    irdl.attributes {"queues" = %queues}
  }
}
