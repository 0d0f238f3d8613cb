// mpk persistent runtime: the data layout shared by the kernel, the host
// loader (runtime/loader.py mirrors these structs with ctypes) and the
// generated task code.
//
// The tables are built on the compiling machine by mpk-materialize
// (lowering/mpk_materialize.py) and stored in a bundle's tables.npz.
// Self-contained on purpose: NVRTC compiles it without any CUDA header.
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

// One task instance. 32 bytes: the worker reads it with two 16-byte loads.
typedef struct MpkTask {
  int fn;             // dispatch function id of the task's group
  int task;           // row-major index in the group's grid
  int group;          // group id (module order), for diagnostics; the kernel's shared-memory
                      // task cache holds the global task id here instead (mpk_runtime.cu)
  int buffers;        // offset of the group's buffer list in MpkLaunch::buffer_ptrs
  int wait_slot;      // event counter to wait on, or -1
  int wait_triggers;  // that event's triggers per step: wait for triggers * (step + 1)
  int trigger_slot;   // event counter to bump when done, or -1
  int flags;          // MPK_TASK_* (runtime/tables.py FLAGS)
} MpkTask;

enum {
  MPK_TASK_STAGED = 1,              // its weight rows come in the worker's weight ring (MpkPrefetch)
  MPK_TASK_TRIGGER_EVERY_RANK = 2,  // bump trigger_slot on every rank of a tensor-parallel step
  MPK_TASK_WAIT_ON_RANKS = 4,       // other ranks (GPUs) bump its wait counter: acquire at system scope
  MPK_TASK_TRIGGER_ONE_RANK = 8,    // bump trigger_slot on rank flags >> MPK_TASK_RANK_SHIFT only
  MPK_TASK_PREFETCH = 16,           // its group has a prefetch function (mpk_prefetch_dispatch)
  MPK_TASK_POLLS = 32,              // its loads poll flagged data (mpk-data-flags): it may give up
};
#define MPK_TASK_RANK_SHIFT 8
// Dynamic shared memory a worker keeps before the tasks' scratch when its bundle has
// flagged buffers (mpk-data-flags): at scratch - 16, the word a task's flagged poll sets
// when it gives up.
#define MPK_POLL_STUCK_BYTES 128

// The weights a task streams: one contiguous byte range of one of its buffers
// (buffer_ptrs[buffer] + offset, `bytes` long, 16-byte aligned), or buffer -1.
// Weights depend on no event. With row_bytes 0 a worker pulls them into L2
// while the task still waits for its inputs. With row_bytes > 0 the task
// reads them from the worker's weight ring in shared memory (mpk-stage-weights):
// the worker copies them there row by row, MPK_STAGE_ROW_PAD bytes between rows,
// as soon as the ring has room, i.e. while earlier tasks still run; a second
// weight of the same tile shape (gate_up's up rows), if second_buffer >= 0,
// follows the first one's rows in the same chunk of the ring.
typedef struct MpkPrefetch {
  int buffer;         // index into MpkLaunch::buffer_ptrs, or -1
  int offset;         // bytes
  int bytes;          // of each weight's range
  int row_bytes;      // 0: L2 prefetch; else: staged, bytes / row_bytes rows per weight
  int second_buffer;  // a staged task's second weight, or -1
  int second_offset;
} MpkPrefetch;

#define MPK_STAGE_ROW_PAD 16  // spreads the rows a tensor-core step reads over the banks
// Entries of a group's buffer list (buffers, then tensor maps) the worker copies into
// shared memory for the task's dispatch; the loader pads buffer_ptrs by as many.
#define MPK_GROUP_BUFFERS_MAX 16
#define MPK_RING_MAX_DEPTH 16 // staged tasks whose weights a worker has in flight at most

// Written by the first worker that gives up; every other worker then stops.
typedef struct MpkError {
  int code;                 // MPK_OK or MPK_ERROR_*
  int task;                 // global id of the stuck task
  int worker;               // worker (CTA) whose queue holds it
  int smid;                 // the SM that worker ran on
  int slot;                 // event slot it waited on
  int step;                 // step within the launch
  unsigned int observed;    // counter value when the wait timed out
  unsigned int expected;    // the value it waited for
} MpkError;

enum {
  MPK_OK = 0,
  MPK_ERROR_TIMEOUT = 1,    // a wait exceeded MpkLaunch::timeout_ns
  MPK_ERROR_STAGE_TIMEOUT = 2,  // a task's weights never arrived in the ring (slot -1)
  MPK_ERROR_POLL_TIMEOUT = 3,   // a task's flagged inputs (mpk-data-flags) never arrived (slot -1)
};

// The persistent kernel's only parameter, passed by value.
typedef struct MpkLaunch {
  const MpkTask* tasks;                    // [num_tasks], by global task id
  const int* queue_offsets;                // [num_workers + 1], CSR over queue_tasks
  const int* queue_tasks;                  // [num_tasks], each worker's tasks in order
  unsigned int* event_counters;            // [num_slots]; zero, or triggers if primed, at launch
  const unsigned long long* buffer_ptrs;   // every group's buffer list, concatenated, then
                                           // MPK_GROUP_BUFFERS_MAX entries of padding
  MpkError* error;                         // zeroed before the launch
  unsigned long long* profile;             // [steps][num_tasks][2] start/end ns, or null
  unsigned long long timeout_ns;           // longest a wait may spin
  int num_tasks;
  int steps;                               // decode steps this launch runs
  const MpkPrefetch* prefetch;             // [num_tasks]: weights to prefetch or stage, or null
  int ring_bytes;                          // the weight ring's shared memory; 0: nothing staged
  int ring_depth;                          // staged tasks in flight at most (<= MPK_RING_MAX_DEPTH)
  int task_cache;                          // MpkTasks of its queue a worker keeps in shared
                                           // memory (>= the longest queue), or 0: none
  // A tensor-parallel step: every rank's event counters lie at the same place in its peer
  // memory, so rank k's counter of a slot is this rank's plus rank_distances[k] bytes.
  const long long* rank_distances;         // [ranks], or null: one rank
  int ranks;
  int poll_stuck_bytes;                    // MPK_POLL_STUCK_BYTES if a task polls flagged buffers, else 0
} MpkLaunch;

#ifdef __CUDACC__
// The ABI of the generated code: `fn` is the group's function id (assigned
// by the lowering), `task` the row-major index of the task in its group's
// grid, `step` the decode step within the launch (selects the copy of a
// per-step io buffer), `buffers` the base addresses of the group's buffers
// in (inputs..., outputs...) order, `smem` the task's shared-memory scratch,
// `staged` the task's weight rows in the ring (a staged task only).
__device__ void mpk_dispatch(int fn, int task, int step, const unsigned long long* buffers,
                             char* smem, const char* staged);

// One thread, while a MPK_TASK_PREFETCH task still waits for its inputs: starts
// copies into L2 of what the task will read that depends on no event but on
// run-time values (an attention task's cache rows, found from the positions).
// A hint: it writes nothing the task reads.
__device__ void mpk_prefetch_dispatch(int fn, int task, int step, const unsigned long long* buffers);

// The persistent kernel: grid = number of queues (one per SM), all resident.
__global__ void mpk_persistent_kernel(const MpkLaunch launch);
#endif

#ifdef __cplusplus
}
#endif
