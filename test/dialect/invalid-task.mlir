// One chunk per task-level verifier rule (dialects/README.md, [V]).
// RUN: mpk-opt %s -split-input-file -verify-diagnostics

// kernel num_sms
// expected-error@+1 {{'num_sms' must be positive}}
"mpk.kernel"() {sym_name = "k", num_sms = 0 : i64, arch = "sm_90"} : () -> ()

// -----

// one kernel
"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
// expected-error@+1 {{a module holds at most one 'mpk.kernel'}}
"mpk.kernel"() {sym_name = "k2", num_sms = 2 : i64, arch = "sm_90"} : () -> ()

// -----

// kernel needed
"mpk.buffer"() {sym_name = "x", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
// expected-error@+1 {{task groups need an 'mpk.kernel' header}}
"mpk.tasks"() {sym_name = "t", kind = "add", grid = array<i64: 1, 4>, tile = array<i64: 1, 16>, inputs = [@x], outputs = [@y]} : () -> ()

// -----

// buffer type
"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
// expected-error@+1 {{'type' must be a ranked tensor type}}
"mpk.buffer"() {sym_name = "x", type = memref<4xf32>, space = "workspace"} : () -> ()

// -----

// buffer space
"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
// expected-error@+1 {{unknown space 'shared'}}
"mpk.buffer"() {sym_name = "x", type = tensor<4xf32>, space = "shared"} : () -> ()

// -----

// weight name
"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
// expected-error@+1 {{a weight buffer needs a 'name' string attribute}}
"mpk.buffer"() {sym_name = "x", type = tensor<4xf32>, space = "weight"} : () -> ()

// -----

// buffer offset
"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
// expected-error@+1 {{'offset' must be a non-negative integer}}
"mpk.buffer"() {sym_name = "x", type = tensor<4xf32>, space = "workspace", offset = -8 : i64} : () -> ()

// -----

// event size
"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
// expected-error@+1 {{'size' must be positive}}
"mpk.event"() {sym_name = "e", size = 0 : i64, triggers = 1 : i64} : () -> ()

// -----

// event triggers
"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
// expected-error@+1 {{'triggers' must be positive}}
"mpk.event"() {sym_name = "e", size = 1 : i64, triggers = 0 : i64} : () -> ()

// -----

// symbol redefinition
"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
// expected-note@+1 {{see existing symbol definition here}}
"mpk.buffer"() {sym_name = "x", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
// expected-error@+1 {{redefinition of symbol named 'x'}}
"mpk.buffer"() {sym_name = "x", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()

// -----

// grid kind
"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
// expected-error@+1 {{'grid' must be an array<i64: ...>}}
"mpk.tasks"() {sym_name = "t", kind = "add", grid = array<i32: 1, 4>, tile = array<i64: 1, 16>, inputs = [@x], outputs = [@y]} : () -> ()

// -----

// grid rank
"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
// expected-error@+1 {{grid (rank 1) and tile (rank 2) must have the same non-zero rank}}
"mpk.tasks"() {sym_name = "t", kind = "add", grid = array<i64: 4>, tile = array<i64: 1, 16>, inputs = [@x], outputs = [@y]} : () -> ()

// -----

// grid positive
"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
// expected-error@+1 {{grid and tile sizes must be positive}}
"mpk.tasks"() {sym_name = "t", kind = "add", grid = array<i64: 1, 0>, tile = array<i64: 1, 16>, inputs = [@x], outputs = [@y]} : () -> ()

// -----

// inputs symbols
"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
// expected-error@+1 {{'inputs' must be an array of buffer symbols}}
"mpk.tasks"() {sym_name = "t", kind = "add", grid = array<i64: 1, 4>, tile = array<i64: 1, 16>, inputs = ["x"], outputs = [@y]} : () -> ()

// -----

// outputs non-empty
"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
// expected-error@+1 {{a task group needs at least one output buffer}}
"mpk.tasks"() {sym_name = "t", kind = "add", grid = array<i64: 1, 4>, tile = array<i64: 1, 16>, inputs = [@x], outputs = []} : () -> ()

// -----

// params dict
"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
// expected-error@+1 {{'params' must be a dictionary}}
"mpk.tasks"() {sym_name = "t", kind = "add", grid = array<i64: 1, 4>, tile = array<i64: 1, 16>, inputs = [@x], outputs = [@y], params = [1]} : () -> ()

// -----

// wait form
"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
// expected-error@+1 {{'wait' expected [@event, affine_map<...>]}}
"mpk.tasks"() {sym_name = "t", kind = "add", grid = array<i64: 1, 4>, tile = array<i64: 1, 16>, inputs = [@x], outputs = [@y], wait = [@e]} : () -> ()

// -----

// kind known
"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
// expected-error@+1 {{unknown task kind 'conv2d'}}
"mpk.tasks"() {sym_name = "t", kind = "conv2d", grid = array<i64: 1, 4>, tile = array<i64: 1, 16>, inputs = [@x], outputs = [@y]} : () -> ()

// -----

// buffer exists
"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
// expected-error@+1 {{'nope' does not name an 'mpk.buffer'}}
"mpk.tasks"() {sym_name = "t", kind = "add", grid = array<i64: 1, 4>, tile = array<i64: 1, 16>, inputs = [@nope], outputs = [@y]} : () -> ()

// -----

// domain rank
"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
// expected-error@+1 {{grid rank 2 differs from the output domain rank 1}}
"mpk.tasks"() {sym_name = "t", kind = "add", grid = array<i64: 1, 4>, tile = array<i64: 1, 16>, inputs = [@x], outputs = [@y], domain = array<i64: 64>} : () -> ()

// -----

// coverage
"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
// expected-error@+1 {{do not cover the output [1, 64] exactly once (grid must be [1, 4])}}
"mpk.tasks"() {sym_name = "t", kind = "add", grid = array<i64: 1, 3>, tile = array<i64: 1, 16>, inputs = [@x], outputs = [@y]} : () -> ()

// -----

// coverage overlap
"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
// expected-error@+1 {{do not cover the output [1, 64] exactly once}}
"mpk.tasks"() {sym_name = "t", kind = "add", grid = array<i64: 1, 8>, tile = array<i64: 1, 16>, inputs = [@x], outputs = [@y]} : () -> ()

// -----

// event exists
"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
// expected-error@+1 {{'wait' names '@nope', which is not an 'mpk.event'}}
"mpk.tasks"() {sym_name = "t", kind = "add", grid = array<i64: 1, 4>, tile = array<i64: 1, 16>, inputs = [@x], outputs = [@y], wait = [@nope, affine_map<(d0, d1) -> (0)>]} : () -> ()

// -----

// map dims
"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
"mpk.event"() {sym_name = "e", size = 2 : i64, triggers = 2 : i64} : () -> ()
// expected-error@+1 {{'trigger' map must take 2 dims (one per grid dim) and give one result}}
"mpk.tasks"() {sym_name = "t", kind = "add", grid = array<i64: 1, 4>, tile = array<i64: 1, 16>, inputs = [@x], outputs = [@y], trigger = [@e, affine_map<(d0) -> (0)>]} : () -> ()

// -----

// map range
"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
"mpk.event"() {sym_name = "e", size = 2 : i64, triggers = 2 : i64} : () -> ()
// expected-error@+1 {{'trigger' index 2 of task 2 is out of range for '@e' of size 2}}
"mpk.tasks"() {sym_name = "t", kind = "add", grid = array<i64: 1, 4>, tile = array<i64: 1, 16>, inputs = [@x], outputs = [@y], trigger = [@e, affine_map<(d0, d1) -> (d1)>]} : () -> ()

// -----

// trigger count
"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
// expected-error@+1 {{event '@e' index 0 is triggered by 2 task(s) but declares triggers = 3}}
"mpk.event"() {sym_name = "e", size = 2 : i64, triggers = 3 : i64} : () -> ()
"mpk.tasks"() {sym_name = "t", kind = "add", grid = array<i64: 1, 4>, tile = array<i64: 1, 16>, inputs = [@x], outputs = [@y], trigger = [@e, affine_map<(d0, d1) -> (d1 floordiv 2)>]} : () -> ()

// -----

// untriggered event
"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
// expected-error@+1 {{event '@e' index 0 is triggered by 0 task(s) but declares triggers = 1}}
"mpk.event"() {sym_name = "e", size = 1 : i64, triggers = 1 : i64} : () -> ()
"mpk.tasks"() {sym_name = "t", kind = "add", grid = array<i64: 1, 4>, tile = array<i64: 1, 16>, inputs = [@x], outputs = [@y], wait = [@e, affine_map<(d0, d1) -> (0)>]} : () -> ()

// -----

// cycle
"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
"mpk.event"() {sym_name = "e1", size = 1 : i64, triggers = 4 : i64} : () -> ()
"mpk.event"() {sym_name = "e2", size = 1 : i64, triggers = 4 : i64} : () -> ()
// expected-error@+1 {{the event graph has a cycle}}
"mpk.tasks"() {sym_name = "a", kind = "add", grid = array<i64: 1, 4>, tile = array<i64: 1, 16>, inputs = [@x], outputs = [@y], wait = [@e2, affine_map<(d0, d1) -> (0)>], trigger = [@e1, affine_map<(d0, d1) -> (0)>]} : () -> ()
"mpk.tasks"() {sym_name = "b", kind = "add", grid = array<i64: 1, 4>, tile = array<i64: 1, 16>, inputs = [@y], outputs = [@x], wait = [@e1, affine_map<(d0, d1) -> (0)>], trigger = [@e2, affine_map<(d0, d1) -> (0)>]} : () -> ()

// -----

// schedule queues
"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
"mpk.tasks"() {sym_name = "t", kind = "add", grid = array<i64: 1, 4>, tile = array<i64: 1, 16>, inputs = [@x], outputs = [@y]} : () -> ()
// expected-error@+1 {{3 queues for a kernel of 2 SMs}}
"mpk.schedule"() {queues = [array<i32: 0>, array<i32: 1>, array<i32: 2, 3>]} : () -> ()

// -----

// schedule range
"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
"mpk.tasks"() {sym_name = "t", kind = "add", grid = array<i64: 1, 4>, tile = array<i64: 1, 16>, inputs = [@x], outputs = [@y]} : () -> ()
// expected-error@+1 {{queue entries must be task ids in [0, 4)}}
"mpk.schedule"() {queues = [array<i32: 0, 1, 2>, array<i32: 7>]} : () -> ()

// -----

// schedule once
"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
"mpk.tasks"() {sym_name = "t", kind = "add", grid = array<i64: 1, 4>, tile = array<i64: 1, 16>, inputs = [@x], outputs = [@y]} : () -> ()
// expected-error@+1 {{task 2 appears 2 times in the queues}}
"mpk.schedule"() {queues = [array<i32: 0, 1, 2, 3>, array<i32: 2>]} : () -> ()

// -----

// an event of several ranks is triggered only by groups that store into the ranks' memory
"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
"mpk.buffer"() {sym_name = "y", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
"mpk.buffer"() {sym_name = "z", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
"mpk.event"() {sym_name = "e", size = 1 : i64, triggers = 4 : i64, ranks = 2 : i64} : () -> ()
// expected-error@+1 {{'t' triggers '@e' of 2 rank(s): an event of several ranks is triggered by the kinds that store into other ranks' memory}}
"mpk.tasks"() {sym_name = "t", kind = "add", grid = array<i64: 1, 4>, tile = array<i64: 1, 16>, inputs = [@x, @x], outputs = [@y], trigger = [@e, affine_map<(d0, d1) -> (0)>]} : () -> ()
"mpk.tasks"() {sym_name = "u", kind = "add", grid = array<i64: 1, 4>, tile = array<i64: 1, 16>, inputs = [@y, @y], outputs = [@z], wait = [@e, affine_map<(d0, d1) -> (0)>]} : () -> ()

// -----

// scatter slots: the ranks' chunks of x
"mpk.kernel"() {sym_name = "k", num_sms = 2 : i64, arch = "sm_90"} : () -> ()
"mpk.buffer"() {sym_name = "x", type = tensor<1x64xbf16>, space = "workspace"} : () -> ()
"mpk.buffer"() {sym_name = "peers", type = tensor<3xi64>, space = "io"} : () -> ()
"mpk.buffer"() {sym_name = "slots", type = tensor<2x1x64xbf16>, space = "peer"} : () -> ()
// expected-error@+1 {{the output must be the slots [2, 1, 32] of bf16 (64 columns in 2 chunks), got tensor<2x1x64xbf16>}}
"mpk.tasks"() {sym_name = "s", kind = "scatter", grid = array<i64: 1, 4>, tile = array<i64: 1, 16>, domain = array<i64: 1, 64>, inputs = [@x, @peers], outputs = [@slots], params = {ranks = 2 : i64}} : () -> ()
