// mpk persistent kernel: one worker CTA per SM walks its queue of tasks for
// several decode steps. Dependencies are event counters in global memory:
// a task waits until its counter reaches triggers * (step + 1) (counters are
// never reset within a launch), runs, and bumps its trigger counter once.
//
// Launch with grid = number of queues (= SM count) and all CTAs resident, so
// a spin-wait always has a running producer. A wait that exceeds the timeout
// records the stuck task in MpkLaunch::error and makes every worker return:
// a broken table is an error the host reports, never a hang.
//
// A worker copies its queue's task descriptors into shared memory at launch
// (when the loader found room, MpkLaunch::task_cache): between two tasks
// thread 0 then reads its next task from there, and the only global access
// before the next task starts is the poll of its event counter.
//
// Waiting is thread 0's alone: it polls its task's counter and does nothing
// else meanwhile. Lane 0 of the last warp ("the side lane") uses the wait to
// pull the task's weights into L2 when they are small enough to help
// (MPK_WAIT_PREFETCH_MAX_BYTES; bench/NOTES.md rounds 1 and 9).
//
// Weight stages (mpk-stage-weights, off unless asked for): a staged task reads
// its weight rows from one of two shared-memory stages. A copy warp fills
// them in queue order with bulk copies (TMA), each completing on the stage's
// mbarrier: the first two at launch, then the next one whenever a staged task
// finishes and frees its stage, so a task's weights stream in while the tasks
// before it run and while it waits for its inputs; thread 0 waits for them.

#include "mpk_runtime.h"
#include "mpk_sync.h"

// The largest weight range (bytes per task) the side lane prefetches into L2 while
// its task waits; 0: none. On the H200 (bench/NOTES.md round 9) the prefetch helped
// where a stage's tasks read 32-64 KB each (Qwen3-0.6B b1 is 3% slower without it) and
// cost where they read 256 KB and more (Llama 3.2 1B's gate_up and down, every
// Qwen3-8B linear: a stage's ranges outgrow L2 and compete with the producers' loads);
// 128 KB was a wash. `python -m bench.build --runtime-define MPK_WAIT_PREFETCH_MAX_BYTES=N`
// builds another bound for an A/B.
#ifndef MPK_WAIT_PREFETCH_MAX_BYTES
#define MPK_WAIT_PREFETCH_MAX_BYTES 65536
#endif

namespace {

// The side lane, while thread 0 waits for `slot` to reach `expected`: starts an
// asynchronous copy of the task's weights from memory into L2 (sm_90 bulk prefetch:
// one instruction, no registers, no completion to wait for) if the counter is short
// and the range small enough. The prefetch record is loaded beside the (relaxed) look
// at the counter, so that a task whose event is complete costs one round trip here,
// as it does thread 0.
__device__ __forceinline__ void prefetch_l2_while_waiting(const MpkLaunch& launch, int task_id, int slot,
                                                          unsigned int expected) {
  if (MPK_WAIT_PREFETCH_MAX_BYTES <= 0 || launch.prefetch == nullptr) return;
  const MpkPrefetch p = launch.prefetch[task_id];
  if (load_relaxed(launch.event_counters + slot) >= expected) return;
  if (p.buffer < 0 || p.bytes <= 0 || p.bytes > MPK_WAIT_PREFETCH_MAX_BYTES) return;
  const char* base = reinterpret_cast<const char*>(launch.buffer_ptrs[p.buffer]) + p.offset;
  asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(base), "r"(p.bytes) : "memory");
}

__device__ __forceinline__ int load_volatile(const int* p) {
  return *static_cast<const volatile int*>(p);
}

// Records why this worker gives up (the first worker to fail wins).
__device__ void record_error(const MpkLaunch& launch, int code, int task_id, int slot, int step,
                             unsigned int observed, unsigned int expected) {
  MpkError* error = launch.error;
  if (atomicCAS(&error->code, MPK_OK, code) == MPK_OK) {
    error->task = task_id;
    error->worker = blockIdx.x;
    error->smid = sm_id();
    error->slot = slot;
    error->step = step;
    error->observed = observed;
    error->expected = expected;
    __threadfence();
  }
}

// The copy warp's bookkeeping of the two weight stages (thread 0 waits and
// counts `used`): the staged tasks of this worker's queue (over all steps of the
// launch) in order, ordinal u in stage u % 2, whose mbarrier completes its
// (u / 2)-th phase when the rows arrive.
struct Stager {
  const MpkLaunch* launch;
  int queue_begin, queue_len;
  long long end;                 // queue positions in the launch: steps * queue_len
  long long scan;                // last position looked at
  unsigned int issued, used;     // staged tasks whose copy was started (copy warp) / that ran (thread 0)
  char* stages;
  unsigned long long* full;      // one mbarrier per stage

  __device__ char* stage(unsigned int ordinal) const { return stages + (ordinal & 1u) * launch->stage_bytes; }
  __device__ unsigned int barrier(unsigned int ordinal) const { return shared_address(full + (ordinal & 1u)); }

  // Starts the copy of the next staged task's rows into the stage it will use.
  // Called by all of the copy warp (the state is the same in every lane): lane 0
  // arms the mbarrier, the lanes issue the row copies between them.
  __device__ void issue_next() {
    const unsigned int lane = threadIdx.x & 31u;
    while (++scan < end) {
      const int task_id = launch->queue_tasks[queue_begin + (int)(scan % queue_len)];
      const MpkPrefetch p = launch->prefetch[task_id];
      if (p.row_bytes <= 0) continue;
      const unsigned int bar = barrier(issued);
      char* dst = stage(issued);
      const char* src = reinterpret_cast<const char*>(launch->buffer_ptrs[p.buffer]) + p.offset;
      if (lane == 0)
        asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(p.bytes) : "memory");
      __syncwarp();
      for (int r = lane, rows = p.bytes / p.row_bytes; r < rows; r += 32)
        asm volatile(
            "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];"
            ::"r"(shared_address(dst + r * (p.row_bytes + MPK_STAGE_ROW_PAD))),
              "l"(src + (long long)r * p.row_bytes), "r"(p.row_bytes), "r"(bar) : "memory");
      ++issued;
      return;
    }
  }

  // Waits until staged task `ordinal`'s rows are in its stage; false on timeout.
  __device__ bool arrived(unsigned int ordinal, unsigned long long timeout_ns) const {
    const unsigned int bar = barrier(ordinal), parity = (ordinal >> 1) & 1u;
    unsigned long long start = 0;
    for (unsigned int spins = 0;; ++spins) {
      unsigned int done;
      asm volatile("{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }"
                   : "=r"(done) : "r"(bar), "r"(parity) : "memory");
      if (done) return true;
      if (spins == 0) start = global_time_ns();
      else if ((spins & 63u) == 0 && global_time_ns() - start > timeout_ns) return false;
    }
  }
};

// Spins until the counter reaches `expected`. False if the launch was
// aborted meanwhile, or the wait timed out (then the error is recorded).
// A poll is an L2 round trip (~140 ns on an idle H200); __nanosleep(32) between
// two adds ~60 ns (polling back to back for the first 2 us measured the same).
// `system`: other GPUs bump the counter (MPK_TASK_WAIT_ON_RANKS).
__device__ bool wait_for_event(const MpkLaunch& launch, int task_id, int slot,
                               unsigned int expected, int step, bool system) {
  const unsigned int* counter = launch.event_counters + slot;
  unsigned int observed = system ? load_acquire_system(counter) : load_acquire(counter);
  if (observed >= expected) return true;
  const unsigned long long start = global_time_ns();
  for (unsigned int spins = 0;; ++spins) {
    observed = system ? load_acquire_system(counter) : load_acquire(counter);
    if (observed >= expected) return true;
    if ((spins & 255u) == 255u) {  // look at the clock and at the others now and then
      if (load_volatile(&launch.error->code) != MPK_OK) return false;
      if (global_time_ns() - start > launch.timeout_ns) break;
    }
    __nanosleep(32);
  }
  record_error(launch, MPK_ERROR_TIMEOUT, task_id, slot, step, observed, expected);
  return false;
}

// Bumps `slot` on rank `rank` of a tensor-parallel step (this one's included): the task
// stored into that rank's memory, and that rank's waiters count its trigger.
__device__ void trigger_on_rank(const MpkLaunch& launch, int slot, int rank) {
  add_release_system(reinterpret_cast<unsigned int*>(
      reinterpret_cast<char*>(launch.event_counters + slot) + launch.rank_distances[rank]), 1u);
}

}  // namespace

__device__ __forceinline__ long long round_up_128(long long n) { return (n + 127) / 128 * 128; }

extern "C" __global__ void mpk_persistent_kernel(const MpkLaunch launch) {
  // Dynamic shared memory: [task cache][stage 0][stage 1][the tasks' scratch].
  extern __shared__ __align__(128) char smem[];
  __shared__ int proceed;
  __shared__ const char* staged;          // the running task's stage, or null
  __shared__ __align__(8) unsigned long long stage_full[2];

  const int worker = blockIdx.x;
  const int queue_begin = launch.queue_offsets[worker];
  const int queue_end = launch.queue_offsets[worker + 1];
  const bool staging = launch.stage_bytes > 0 && launch.prefetch != nullptr;
  MpkTask* cache = launch.task_cache > 0 ? reinterpret_cast<MpkTask*>(smem) : nullptr;
  char* stages = smem + round_up_128((long long)launch.task_cache * sizeof(MpkTask));
  char* scratch = stages + (staging ? 2 * launch.stage_bytes : 0);  // the tasks' own shared memory

  // The cached copy of a task holds its global id where `group` was (the kernel never
  // reads the group): thread 0 then needs no global load for it while it waits.
  if (cache != nullptr)
    for (int q = queue_begin + threadIdx.x; q < queue_end; q += blockDim.x) {
      MpkTask task = launch.tasks[launch.queue_tasks[q]];
      task.group = launch.queue_tasks[q];
      cache[q - queue_begin] = task;
    }
  const unsigned int side_lane = (blockDim.x / 32 - 1) * 32;   // lane 0 of the last warp (one warp: none)

  Stager stager{&launch, queue_begin, queue_end - queue_begin,
                (long long)launch.steps * (queue_end - queue_begin), -1, 0u, 0u, stages, stage_full};
  // Warp 1 issues the copies, so that thread 0 goes on to the next task's wait meanwhile.
  const bool copy_warp = threadIdx.x / 32 == 1 % (blockDim.x / 32);
  if (copy_warp && staging) {
    if (threadIdx.x % 32 == 0) {
      for (int s = 0; s < 2; ++s)
        asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(shared_address(stage_full + s)) : "memory");
      asm volatile("fence.mbarrier_init.release.cluster;\n\tfence.proxy.async.shared::cta;" ::: "memory");
    }
    __syncwarp();
    stager.issue_next();
    stager.issue_next();
  }
  __syncthreads();  // the task cache is filled, the stages' mbarriers exist and their first copies started

  bool stopped = false;
  for (int step = 0; step < launch.steps && !stopped; ++step) {
    for (int q = queue_begin; q < queue_end; ++q) {
      const MpkTask task = cache != nullptr ? cache[q - queue_begin] : launch.tasks[launch.queue_tasks[q]];
      const int task_id = cache != nullptr ? task.group : launch.queue_tasks[q];
      const bool is_staged = staging && (task.flags & MPK_TASK_STAGED);
      const unsigned int expected = (unsigned int)task.wait_triggers * (unsigned int)(step + 1);

      if (threadIdx.x == 0) {
        // Another worker gave up: stop too (checked once a step; a task's wait checks, too).
        bool ok = q != queue_begin || load_volatile(&launch.error->code) == MPK_OK;
        if (ok && task.wait_slot >= 0)
          ok = wait_for_event(launch, task_id, task.wait_slot, expected, step, task.flags & MPK_TASK_WAIT_ON_RANKS);
        staged = nullptr;
        if (ok && is_staged) {
          ok = stager.arrived(stager.used, launch.timeout_ns);
          if (ok) staged = stager.stage(stager.used++);
          else record_error(launch, MPK_ERROR_STAGE_TIMEOUT, task_id, -1, step, stager.used, 0);
        }
        proceed = ok;
        if (ok && launch.profile)
          launch.profile[2 * ((long long)step * launch.num_tasks + task_id)] = global_time_ns();
      } else if (threadIdx.x == side_lane && task.wait_slot >= 0 && !is_staged) {
        // Inputs not ready yet: use the wait to bring the task's weights into L2.
        prefetch_l2_while_waiting(launch, task_id, task.wait_slot, expected);
      }
      __syncthreads();
      if (!proceed) {  // uniform across the CTA
        stopped = true;
        break;
      }

      const char* stage = staged;  // read before thread 0 can write it again (next iteration)
      mpk_dispatch(task.fn, task.task, step, launch.buffer_ptrs + task.buffers, scratch, stage);
      __syncthreads();

      if (threadIdx.x == 0) {
        if (launch.profile)
          launch.profile[2 * ((long long)step * launch.num_tasks + task_id) + 1] = global_time_ns();
        // The barrier above orders every thread's writes before this release (cumulative).
        if (task.trigger_slot >= 0) {
          if (task.flags & MPK_TASK_TRIGGER_EVERY_RANK)
            for (int k = 0; k < launch.ranks; ++k) trigger_on_rank(launch, task.trigger_slot, k);
          else if (task.flags & MPK_TASK_TRIGGER_ONE_RANK)
            trigger_on_rank(launch, task.trigger_slot, task.flags >> MPK_TASK_RANK_SHIFT);
          else add_release(launch.event_counters + task.trigger_slot, 1u);
        }
      }
      if (copy_warp && stage != nullptr) {  // its stage is free: copy the next staged task's rows
        asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
        stager.issue_next();
      }
    }
  }
  // After an error, let the copies still in flight land before the shared memory goes away
  // (the last copy into each stage; every earlier one has been waited for).
  if (copy_warp && threadIdx.x % 32 == 0)
    for (unsigned int u = stager.issued > 2 ? stager.issued - 2 : 0; u < stager.issued; ++u)
      stager.arrived(u, launch.timeout_ns);
}
