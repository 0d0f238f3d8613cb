// mpk persistent kernel: one worker CTA per SM walks its queue of tasks for
// several decode steps. Dependencies are event counters in global memory:
// a task waits until its counter reaches triggers * (step + 1) (counters are
// never reset within a launch), runs, and bumps its trigger counter once.
//
// Launch with grid = number of queues (= SM count) and all CTAs resident, so
// a spin-wait always has a running producer. A wait that exceeds the timeout
// records the stuck task in MpkLaunch::error and makes every worker return:
// a broken table is an error the host reports, never a hang.

#include "mpk_runtime.h"

namespace {

__device__ __forceinline__ unsigned long long global_time_ns() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

__device__ __forceinline__ unsigned int sm_id() {
  unsigned int id;
  asm volatile("mov.u32 %0, %%smid;" : "=r"(id));
  return id;
}

// Acquire: the producer's writes before its release-add are visible after.
__device__ __forceinline__ unsigned int load_acquire(const unsigned int* p) {
  unsigned int v;
  asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}

__device__ __forceinline__ void add_release(unsigned int* p, unsigned int v) {
  asm volatile("red.release.gpu.global.add.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}

// Starts an asynchronous copy of a task's weights from memory into L2 (sm_90
// bulk prefetch: one instruction, no registers, no completion to wait for).
__device__ __forceinline__ void prefetch_l2(const MpkLaunch& launch, int task_id) {
  if (launch.prefetch == nullptr) return;
  const MpkPrefetch p = launch.prefetch[task_id];
  if (p.buffer < 0 || p.bytes <= 0) return;
  const char* base = reinterpret_cast<const char*>(launch.buffer_ptrs[p.buffer]) + p.offset;
  asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(base), "r"(p.bytes) : "memory");
}

__device__ __forceinline__ int load_volatile(const int* p) {
  return *static_cast<const volatile int*>(p);
}

// Spins until the counter reaches `expected`. False if the launch was
// aborted meanwhile, or the wait timed out (then the error is recorded).
__device__ bool wait_for_event(const MpkLaunch& launch, int task_id, int slot,
                               unsigned int expected, int step) {
  const unsigned int* counter = launch.event_counters + slot;
  unsigned int observed = load_acquire(counter);
  if (observed >= expected) return true;
  const unsigned long long start = global_time_ns();
  for (unsigned int spins = 0;; ++spins) {
    observed = load_acquire(counter);
    if (observed >= expected) return true;
    if ((spins & 255u) == 255u) {  // look at the clock and at the others now and then
      if (load_volatile(&launch.error->code) != MPK_OK) return false;
      if (global_time_ns() - start > launch.timeout_ns) break;
    }
    __nanosleep(32);
  }
  MpkError* error = launch.error;
  if (atomicCAS(&error->code, MPK_OK, MPK_ERROR_TIMEOUT) == MPK_OK) {
    error->task = task_id;
    error->worker = blockIdx.x;
    error->smid = sm_id();
    error->slot = slot;
    error->step = step;
    error->observed = observed;
    error->expected = expected;
    __threadfence();
  }
  return false;
}

}  // namespace

extern "C" __global__ void mpk_persistent_kernel(const MpkLaunch launch) {
  extern __shared__ __align__(128) char smem[];
  __shared__ int proceed;

  const int worker = blockIdx.x;
  const int queue_begin = launch.queue_offsets[worker];
  const int queue_end = launch.queue_offsets[worker + 1];

  for (int step = 0; step < launch.steps; ++step) {
    for (int q = queue_begin; q < queue_end; ++q) {
      const int task_id = launch.queue_tasks[q];
      const MpkTask task = launch.tasks[task_id];

      if (threadIdx.x == 0) {
        bool ok = load_volatile(&launch.error->code) == MPK_OK;
        if (ok && task.wait_slot >= 0) {
          const unsigned int expected = (unsigned int)task.wait_triggers * (unsigned int)(step + 1);
          // Inputs not ready yet: use the wait to bring the task's weights into L2.
          if (load_acquire(launch.event_counters + task.wait_slot) < expected) prefetch_l2(launch, task_id);
          ok = wait_for_event(launch, task_id, task.wait_slot, expected, step);
        }
        proceed = ok;
        if (ok && launch.profile)
          launch.profile[2 * ((long long)step * launch.num_tasks + task_id)] = global_time_ns();
      }
      __syncthreads();
      if (!proceed) return;  // uniform across the CTA

      mpk_dispatch(task.fn, task.task, step, launch.buffer_ptrs + task.buffers, smem);
      __syncthreads();

      if (threadIdx.x == 0) {
        if (launch.profile)
          launch.profile[2 * ((long long)step * launch.num_tasks + task_id) + 1] = global_time_ns();
        if (task.trigger_slot >= 0) {
          __threadfence();  // every thread's writes happened before the barrier above
          add_release(launch.event_counters + task.trigger_slot, 1u);
        }
      }
    }
  }
}
