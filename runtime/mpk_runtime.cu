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
// The weight ring (mpk-stage-weights): a staged task reads its weight rows
// from shared memory. A copy warp fills a ring of `MpkLaunch::ring_bytes` with
// the rows of this worker's next staged tasks in queue order, with bulk copies
// (TMA) that complete on an mbarrier per task, as far ahead as the ring has
// room, independent of events: at launch, then whenever a staged task finishes
// and frees its chunk. A task's weights thus stream in while the tasks before
// it run and while it waits for its inputs; thread 0 waits for them after the
// task's event. The ring's size and depth come from the compiler (mpk.kernel).

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

// The weight ring: `bytes` of shared memory that the copy warp fills with the
// weight rows of this worker's staged tasks, in queue order over all steps of
// the launch, as far ahead as there is room (at most `depth` tasks in flight).
// Staged task u (its ordinal in the launch) gets a contiguous chunk at
// offset[u % depth] and completes phase u / depth of mbarrier full[u % depth]
// when its rows land; thread 0 waits for that before the task starts. The copy
// warp frees a chunk when its task has finished (tasks use their chunks in
// order, so the ring is a FIFO of byte ranges). A chunk never straddles the
// ring's end, and an empty ring starts over at 0, so any chunk of at most
// `bytes` (the compiler's bound) fits once the chunks before it are free.
// All lanes of the copy warp keep the same state; lane 0 writes the shared parts.
struct Ring {
  const MpkLaunch* launch;
  const MpkTask* cache;          // the worker's task cache, or null
  int queue_begin, queue_len;
  long long end;                 // queue positions in the launch: steps * queue_len
  long long scan;                // last position looked at
  unsigned int issued, freed;    // staged tasks whose copy was started / whose chunk is free again
  unsigned int used;             // staged tasks that started (thread 0's count)
  long long head, tail;          // bytes ever allocated / freed (their difference is in use)
  char* ring;
  unsigned long long* full;      // [depth] mbarriers
  int* offset;                   // [depth] chunk offsets
  long long* end_of;             // [depth] head after each chunk (what freeing it moves tail to)

  __device__ unsigned int slot(unsigned int ordinal) const { return ordinal % (unsigned int)launch->ring_depth; }
  __device__ unsigned int barrier(unsigned int ordinal) const { return shared_address(full + slot(ordinal)); }
  __device__ const char* chunk(unsigned int ordinal) const { return ring + offset[slot(ordinal)]; }

  __device__ bool staged(long long position, int* task_id) const {
    const int q = queue_begin + (int)(position % queue_len);
    if (cache != nullptr) {
      *task_id = cache[q - queue_begin].group;
      return cache[q - queue_begin].flags & MPK_TASK_STAGED;
    }
    *task_id = launch->queue_tasks[q];
    return launch->tasks[*task_id].flags & MPK_TASK_STAGED;
  }

  // Starts the copies of the next staged tasks' rows while the ring has room.
  // Called by all of the copy warp: lane 0 arms each mbarrier, the lanes issue
  // the row copies between them.
  __device__ void fill() {
    const unsigned int lane = threadIdx.x & 31u;
    const long long R = launch->ring_bytes;
    while (issued - freed < (unsigned int)launch->ring_depth) {
      long long next = scan;
      int task_id = -1;
      while (++next < end && !staged(next, &task_id)) {}
      if (next >= end) { scan = next; return; }
      const MpkPrefetch p = launch->prefetch[task_id];
      const int rows = p.bytes / p.row_bytes, pitch = p.row_bytes + MPK_STAGE_ROW_PAD;
      const int weights = p.second_buffer >= 0 ? 2 : 1;
      const long long need = ((long long)weights * rows * pitch + 127) / 128 * 128;
      if (head == tail) head = tail = 0;                 // empty: start over at 0
      long long at = head;
      if (at % R + need > R) at += R - at % R;           // no room before the end: wrap
      if (at + need - tail > R) return;                  // not free yet: after the next task
      scan = next;
      const unsigned int bar = barrier(issued);
      char* dst = ring + at % R;
      if (lane == 0) {
        offset[slot(issued)] = (int)(at % R);
        end_of[slot(issued)] = at + need;
        asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;"
                     ::"r"(bar), "r"(weights * p.bytes) : "memory");
      }
      __syncwarp();
      for (int r = lane; r < weights * rows; r += 32) {
        const int w = r / rows, row = r % rows;
        const char* src = reinterpret_cast<const char*>(launch->buffer_ptrs[w ? p.second_buffer : p.buffer]) +
                          (w ? p.second_offset : p.offset) + (long long)row * p.row_bytes;
        asm volatile(
            "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];"
            ::"r"(shared_address(dst + r * pitch)), "l"(src), "r"(p.row_bytes), "r"(bar) : "memory");
      }
      head = at + need;
      ++issued;
    }
  }

  // The oldest chunk's task has finished: its bytes are free again.
  __device__ void free_oldest() { tail = end_of[slot(freed++)]; }

  // Waits until staged task `ordinal`'s rows are in the ring; false on timeout.
  __device__ bool arrived(unsigned int ordinal, unsigned long long timeout_ns) const {
    const unsigned int bar = barrier(ordinal), parity = (ordinal / (unsigned int)launch->ring_depth) & 1u;
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
  // Dynamic shared memory: [task cache][weight ring][the tasks' scratch].
  extern __shared__ __align__(128) char smem[];
  __shared__ int proceed;
  __shared__ const char* staged;          // the running task's weight rows in the ring, or null
  __shared__ __align__(8) unsigned long long ring_full[MPK_RING_MAX_DEPTH];
  __shared__ long long ring_end[MPK_RING_MAX_DEPTH];
  __shared__ int ring_offset[MPK_RING_MAX_DEPTH];

  const int worker = blockIdx.x;
  const int queue_begin = launch.queue_offsets[worker];
  const int queue_end = launch.queue_offsets[worker + 1];
  const bool staging = launch.ring_bytes > 0 && launch.prefetch != nullptr;
  MpkTask* cache = launch.task_cache > 0 ? reinterpret_cast<MpkTask*>(smem) : nullptr;
  char* ring = smem + round_up_128((long long)launch.task_cache * sizeof(MpkTask));
  char* scratch = ring + (staging ? launch.ring_bytes : 0);  // the tasks' own shared memory

  // The cached copy of a task holds its global id where `group` was (the kernel never
  // reads the group): thread 0 then needs no global load for it while it waits.
  if (cache != nullptr)
    for (int q = queue_begin + threadIdx.x; q < queue_end; q += blockDim.x) {
      MpkTask task = launch.tasks[launch.queue_tasks[q]];
      task.group = launch.queue_tasks[q];
      cache[q - queue_begin] = task;
    }
  const unsigned int side_lane = (blockDim.x / 32 - 1) * 32;   // lane 0 of the last warp (one warp: none)

  Ring weights{&launch, cache, queue_begin, queue_end - queue_begin,
               (long long)launch.steps * (queue_end - queue_begin), -1, 0u, 0u, 0u, 0, 0,
               ring, ring_full, ring_offset, ring_end};
  // Warp 1 issues the copies, so that thread 0 goes on to the next task's wait meanwhile.
  const bool copy_warp = threadIdx.x / 32 == 1 % (blockDim.x / 32);
  if (copy_warp && staging && threadIdx.x % 32 == 0) {
    for (int s = 0; s < launch.ring_depth; ++s)
      asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(shared_address(ring_full + s)) : "memory");
    asm volatile("fence.mbarrier_init.release.cluster;\n\tfence.proxy.async.shared::cta;" ::: "memory");
  }
  __syncthreads();  // the task cache is filled (the ring's scan reads its flags), the ring's mbarriers exist
  if (copy_warp && staging) weights.fill();   // thread 0 waits on the mbarriers, not on this

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
          ok = weights.arrived(weights.used, launch.timeout_ns);
          if (ok) staged = weights.chunk(weights.used++);
          else record_error(launch, MPK_ERROR_STAGE_TIMEOUT, task_id, -1, step, weights.used, 0);
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

      mpk_dispatch(task.fn, task.task, step, launch.buffer_ptrs + task.buffers, scratch, staged);
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
      if (copy_warp && is_staged) {  // its chunk is free: copy the next staged tasks' rows
        asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
        weights.free_oldest();
        weights.fill();
      }
    }
  }
  // After an error, let the copies still in flight land before the shared memory goes away.
  if (copy_warp && threadIdx.x % 32 == 0)
    for (unsigned int u = weights.freed; u < weights.issued; ++u) weights.arrived(u, launch.timeout_ns);
}
