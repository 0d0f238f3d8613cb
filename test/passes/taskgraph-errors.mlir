// RUN: not mpk-opt %s --pass-pipeline='builtin.module(mpk-partition{arch=sm_80})' -o /dev/null 2>&1 | filecheck %s --check-prefix=ARCH
// RUN: not mpk-opt %s --pass-pipeline='builtin.module(mpk-schedule)' -o /dev/null 2>&1 | filecheck %s --check-prefix=SCHEDULE
// RUN: not mpk-opt %s --pass-pipeline='builtin.module(mpk-plan-memory)' -o /dev/null 2>&1 | filecheck %s --check-prefix=MEMORY
// RUN: not mpk-opt %s --pass-pipeline='builtin.module(mpk-build-events)' -o /dev/null 2>&1 | filecheck %s --check-prefix=EVENTS
// RUN: not mpk-opt %s --pass-pipeline='builtin.module(mpk-partition,mpk-build-events{report=false},mpk-build-events)' -o /dev/null 2>&1 | filecheck %s --check-prefix=TWICE
// RUN: not mpk-opt %s --pass-pipeline='builtin.module(mpk-partition,mpk-build-events{report=false},mpk-plan-memory{alignment=3})' -o /dev/null 2>&1 | filecheck %s --check-prefix=ALIGN

// Bad options and passes run out of order are diagnostics at the module, not tracebacks.

// ARCH: error: unknown arch 'sm_80' (known: sm_90)
// SCHEDULE: error: no events: run 'mpk-build-events' before 'mpk-schedule'
// MEMORY: error: no events: run 'mpk-build-events' before 'mpk-plan-memory'
// EVENTS: error: no 'mpk.tasks' groups: run 'mpk-partition' first
// TWICE: error: the module already has events ('mpk-build-events' runs once)
// ALIGN: error: alignment must be a power of two, got 3
// CHECK-NOT: Traceback

module {
  func.func @decode_step(%x: tensor<1x64xf32>) -> tensor<1x64xf32> {
    %w = "mpk.weight"() {name = "w"} : () -> tensor<64x64xf32>
    %y = "mpk.linear"(%x, %w) : (tensor<1x64xf32>, tensor<64x64xf32>) -> tensor<1x64xf32>
    return %y : tensor<1x64xf32>
  }
}
