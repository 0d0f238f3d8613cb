// A hand-written stand-in for the generated task code, for runtime tests.
// Same ABI as mpk-lower-tasks' output: an exported `mpk_dispatch` device
// function in a gpu.module. Thread 0 of the CTA does all the work.
//
//   fn 0, "produce" (8 tasks): sleeps (task + 1) * 20 us, then
//         a[task] = (step + 1) * (task + 1)                     buffers: (a)
//   fn 1, "consume" (4 tasks): b[step * 4 + task] = sum(a[0..8)) + task
//                                                               buffers: (a, b)
// So with correct dependencies b[s * 4 + t] == 36 * (s + 1) + t; a consumer
// that ran before its producers sees an older or zero `a`.
module attributes {gpu.container_module} {
  gpu.module @mpk_tasks {
    llvm.func @mpk_dispatch(%fn: i32, %task: i32, %step: i32, %buffers: !llvm.ptr, %smem: !llvm.ptr, %staged: !llvm.ptr) {
      %c0 = llvm.mlir.constant(0 : i32) : i32
      %c1 = llvm.mlir.constant(1 : i32) : i32
      %c4 = llvm.mlir.constant(4 : i32) : i32
      %c8 = llvm.mlir.constant(8 : i32) : i32
      %tid = nvvm.read.ptx.sreg.tid.x : i32
      %leader = llvm.icmp "eq" %tid, %c0 : i32
      llvm.cond_br %leader, ^pick, ^done
    ^pick:
      %a_addr = llvm.load %buffers {alignment = 8 : i64} : !llvm.ptr -> i64
      %a = llvm.inttoptr %a_addr : i64 to !llvm.ptr
      %is_produce = llvm.icmp "eq" %fn, %c0 : i32
      llvm.cond_br %is_produce, ^produce, ^consume
    ^produce:
      %t0 = nvvm.read.ptx.sreg.globaltimer : i64
      %task1 = llvm.add %task, %c1 : i32
      %task1_64 = llvm.sext %task1 : i32 to i64
      %unit = llvm.mlir.constant(20000 : i64) : i64
      %delay = llvm.mul %task1_64, %unit : i64
      %until = llvm.add %t0, %delay : i64
      llvm.br ^sleep
    ^sleep:
      %now = nvvm.read.ptx.sreg.globaltimer : i64
      %waiting = llvm.icmp "ult" %now, %until : i64
      llvm.cond_br %waiting, ^sleep, ^write
    ^write:
      %step1 = llvm.add %step, %c1 : i32
      %value = llvm.mul %step1, %task1 : i32
      %slot = llvm.getelementptr %a[%task] : (!llvm.ptr, i32) -> !llvm.ptr, i32
      llvm.store %value, %slot : i32, !llvm.ptr
      llvm.br ^done
    ^consume:
      llvm.br ^sum(%c0, %c0 : i32, i32)
    ^sum(%i: i32, %acc: i32):
      %more = llvm.icmp "slt" %i, %c8 : i32
      llvm.cond_br %more, ^accumulate, ^store
    ^accumulate:
      %ai = llvm.getelementptr %a[%i] : (!llvm.ptr, i32) -> !llvm.ptr, i32
      %v = llvm.load volatile %ai : !llvm.ptr -> i32
      %acc1 = llvm.add %acc, %v : i32
      %i1 = llvm.add %i, %c1 : i32
      llvm.br ^sum(%i1, %acc1 : i32, i32)
    ^store:
      %b_slot = llvm.getelementptr %buffers[1] : (!llvm.ptr) -> !llvm.ptr, i64
      %b_addr = llvm.load %b_slot {alignment = 8 : i64} : !llvm.ptr -> i64
      %b = llvm.inttoptr %b_addr : i64 to !llvm.ptr
      %row = llvm.mul %step, %c4 : i32
      %index = llvm.add %row, %task : i32
      %result = llvm.add %acc, %task : i32
      %b_elem = llvm.getelementptr %b[%index] : (!llvm.ptr, i32) -> !llvm.ptr, i32
      llvm.store %result, %b_elem : i32, !llvm.ptr
      llvm.br ^done
    ^done:
      llvm.return
    }
    // No task of the stub has a prefetch function.
    llvm.func @mpk_prefetch_dispatch(%fn: i32, %task: i32, %step: i32, %buffers: !llvm.ptr) {
      llvm.return
    }
  }
}
