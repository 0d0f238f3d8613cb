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
// before the next task starts is the poll of its event counter. The loop's own
// state is in shared memory as well, so that nothing on thread 0's way from a
// task's end to its trigger and to the next poll reloads from the stack.
//
// Waiting is thread 0's alone: it polls its task's counter and does nothing
// else meanwhile. Lane 0 of the last warp ("the side lane") uses the wait to
// copy the task's buffer list into shared memory for its dispatch (bench/NOTES.md
// round 18: read from global memory after the wait, it was a round trip before
// every task's first load), and to pull the task's weights into L2 when they are
// small enough to help (MPK_WAIT_PREFETCH_MAX_BYTES; rounds 1 and 9), or run its
// group's prefetch function (an attention task's cache rows; round 18). It finds the
// weights' address in a record resolved at launch, and skips the prefetch once thread
// 0 has seen the inputs: either way it would hold the task back (round 19).
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
// builds another bound for an A/B. Round 19 (the address resolved at launch): without
// it batch 1 is 3.2% slower on Qwen3-0.6B, batch 8 0.1-0.3% faster (within noise).
#ifndef MPK_WAIT_PREFETCH_MAX_BYTES
#define MPK_WAIT_PREFETCH_MAX_BYTES 65536
#endif

namespace {

// threadIdx.x, read anew: the compiler can neither reuse an earlier read nor keep
// a condition on it in a register (i.e. on the stack) across a call.
__device__ __forceinline__ unsigned int thread_index() {
  unsigned int t;
  asm volatile("mov.u32 %0, %%tid.x;" : "=r"(t));
  return t;
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

// A task's weights, resolved when the worker starts, one record per queue position,
// so that neither the copy warp nor the side lane makes a round trip for their
// address (bench/NOTES.md rounds 13 and 19). row_bytes > 0: a staged task, its rows
// come through the ring; row_bytes 0 and src[0] set: the side lane pulls the range
// into L2 while the task waits; src[0] null: neither.
struct TaskWeights {
  const char* src[2];            // the first row of each weight; src[1] null: one weight
  int bytes;                     // of each weight's rows
  int row_bytes;
};
static_assert(sizeof(TaskWeights) == 24, "runtime/tables.py TASK_WEIGHTS_BYTES");

// The side lane, while thread 0 waits for the task's inputs: starts an asynchronous
// copy of the task's weights from memory into L2 (sm_90 bulk prefetch: one
// instruction, no registers, no completion to wait for).
__device__ __forceinline__ void prefetch_weights_l2(const TaskWeights& w) {
  if (w.row_bytes == 0 && w.src[0] != nullptr)
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(w.src[0]), "r"(w.bytes) : "memory");
}

// The weight ring: `bytes` of shared memory that the copy warp fills with the
// weight rows of this worker's staged tasks, in queue order over all steps of
// the launch, as far ahead as there is room (at most `depth` tasks in flight).
// Staged task u (its ordinal in the launch) gets a contiguous chunk at
// offset[u % depth] and completes phase u / depth of mbarrier full[u % depth]
// when its rows land; thread 0 waits for that before the task starts. The copy
// warp frees a chunk when its task has finished (tasks use their chunks in
// order, so the ring is a FIFO of byte ranges). A chunk never straddles the
// ring's end (the bytes it skips count as its own until it is freed), and an
// empty ring starts over at 0, so any chunk of at most `bytes` (the compiler's
// bound) fits once the chunks before it are free. All of it is 32-bit
// arithmetic: no 64-bit division on the issuing path (NOTES round 13).
// All lanes of the copy warp keep the same state; lane 0 writes the shared parts.
struct Ring {
  const MpkLaunch* launch;
  const TaskWeights* rows_of;    // [queue_len]
  int queue_len;
  int scan_q, scan_step;         // the last queue position looked at, and its step
  unsigned int issued, freed;    // staged tasks whose copy was started / whose chunk is free again
  int head;                      // where the next chunk may start
  int in_use;                    // bytes of the chunks not freed yet, with the ends they skipped
  char* ring;
  unsigned long long* full;      // [depth] mbarriers
  int* offset;                   // [depth] chunk offsets
  int* held;                     // [depth] the bytes freeing each chunk gives back

  __device__ unsigned int slot(unsigned int ordinal) const { return ordinal % (unsigned int)launch->ring_depth; }
  __device__ unsigned int barrier(unsigned int ordinal) const { return shared_address(full + slot(ordinal)); }
  __device__ const char* chunk(unsigned int ordinal) const { return ring + offset[slot(ordinal)]; }

  // Starts the copies of the next staged tasks' rows while the ring has room.
  // Called by all of the copy warp: lane 0 arms each mbarrier, the lanes issue
  // the row copies between them.
  __device__ void fill() {
    const unsigned int lane = threadIdx.x & 31u;
    const int R = launch->ring_bytes;
    while (queue_len > 0 && issued - freed < (unsigned int)launch->ring_depth) {
      int q = scan_q, step = scan_step;
      do {
        if (++q == queue_len) { q = 0; ++step; }
      } while (step < launch->steps && rows_of[q].row_bytes == 0);
      if (step >= launch->steps) { scan_q = q; scan_step = step; return; }
      const TaskWeights r = rows_of[q];
      const int rows = r.bytes / r.row_bytes, pitch = r.row_bytes + MPK_STAGE_ROW_PAD;
      const int weights = r.src[1] != nullptr ? 2 : 1;
      const int need = (weights * rows * pitch + 127) / 128 * 128;
      if (in_use == 0) head = 0;                         // empty: start over at 0
      const bool wrap = head + need > R;                 // no room before the end (head may be R)
      const int skip = wrap ? R - head : 0;
      if (in_use + skip + need > R) return;              // not free yet: after the next task
      scan_q = q;
      scan_step = step;
      const unsigned int bar = barrier(issued);
      const int at = wrap ? 0 : head;
      char* dst = ring + at;
      if (lane == 0) {
        offset[slot(issued)] = at;
        held[slot(issued)] = skip + need;
        asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;"
                     ::"r"(bar), "r"(weights * r.bytes) : "memory");
      }
      __syncwarp();
      for (int i = lane; i < weights * rows; i += 32) {
        const int w = i / rows, row = i % rows;
        asm volatile(
            "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];"
            ::"r"(shared_address(dst + i * pitch)), "l"(r.src[w] + (long long)row * r.row_bytes),
              "r"(r.row_bytes), "r"(bar) : "memory");
      }
      head = at + need;
      in_use += skip + need;
      ++issued;
    }
  }

  // The oldest chunk's task has finished: its bytes are free again.
  __device__ void free_oldest() { in_use -= held[slot(freed++)]; }

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
// A poll is an L2 round trip (~140 ns on an idle H200, more while the other SMs
// stream). Between two it sleeps MPK_WAIT_SLEEP_NS (__nanosleep(32) takes ~64 ns). On
// the H200 (bench/NOTES.md round 19) both directions lost: a second poll in flight
// made the hop 0.13-0.16 us longer and a step up to 0.8% slower, sleeping 128 or 256
// ns made steps up to 0.5% and 1.2% slower.
// `system`: other GPUs bump the counter (MPK_TASK_WAIT_ON_RANKS).
#ifndef MPK_WAIT_SLEEP_NS
#define MPK_WAIT_SLEEP_NS 32
#endif
// Measuring: 1 stamps a task's profile end after the release's fence, so that the
// profile's hop is the add's way to the waiting SM and the task's time holds the fence.
#ifndef MPK_PROFILE_END_AFTER_FENCE
#define MPK_PROFILE_END_AFTER_FENCE 0
#endif
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
    __nanosleep(MPK_WAIT_SLEEP_NS);
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
  // Dynamic shared memory: [task cache][weight records][weight ring][the tasks' scratch].
  extern __shared__ __align__(128) char smem[];
  __shared__ int proceed;
  __shared__ const char* staged;          // the running task's weight rows in the ring, or null
  // The loop's state lives in shared memory, not in registers: a register live
  // across the task's call is spilled to the stack, and after a task has streamed
  // its weights through L1 every reload is an L2 round trip on thread 0's way from
  // the task's end to its trigger and to the next wait (bench/NOTES.md round 13).
  // Thread 0 walks the queue (`lead`) and publishes the task to run (`running`); the
  // side lane walks its own copy (`side`) to prefetch while thread 0 waits.
  struct Position { int q, step; };
  __shared__ Position lead, side;
  __shared__ struct {
    int fn, task, step;                    // mpk_dispatch's arguments (and buffer_list)
    int id, trigger_slot, flags;           // for thread 0 after it
    unsigned long long* profile_end;       // where the end time goes, or null
  } running;
  // The running task's buffer list, copied from global memory while thread 0 waits
  // for its inputs (by the side lane): the dispatch then reads shared memory, not a
  // round trip to L2 between the wait and the task's first load.
  __shared__ unsigned long long buffer_list[MPK_GROUP_BUFFERS_MAX];
  // Thread 0's wait for the running task's inputs is over: the side lane stops
  // prefetching (atomics: the two look at it between the same barriers).
  __shared__ int inputs_seen;
  __shared__ bool chunk_in_use;           // the running task's rows are in the ring (the copy warp's)
  __shared__ unsigned int chunks_used;    // staged tasks that started (thread 0's)
  __shared__ __align__(8) unsigned long long ring_full[MPK_RING_MAX_DEPTH];
  __shared__ int ring_held[MPK_RING_MAX_DEPTH];
  __shared__ int ring_offset[MPK_RING_MAX_DEPTH];
  const int worker = blockIdx.x;
  const int queue_begin = launch.queue_offsets[worker];
  const int queue_end = launch.queue_offsets[worker + 1];
  const bool staging = launch.ring_bytes > 0 && launch.prefetch != nullptr;
  const int queue_len = queue_end - queue_begin;
  MpkTask* cache = launch.task_cache > 0 ? reinterpret_cast<MpkTask*>(smem) : nullptr;
  TaskWeights* weights_of = reinterpret_cast<TaskWeights*>(smem + round_up_128((long long)launch.task_cache * sizeof(MpkTask)));
  char* ring = reinterpret_cast<char*>(weights_of) +
               (launch.prefetch != nullptr ? round_up_128((long long)queue_len * sizeof(TaskWeights)) : 0);
  char* scratch = ring + (staging ? launch.ring_bytes : 0) + launch.poll_stuck_bytes;  // the tasks' own shared memory
  // The word a task's flagged poll sets when it gave up (mpk-data-flags), or null without
  // flagged buffers; thread 0 then reports the task. Its address lives in shared memory: a
  // register live across the task's call is spilled (NOTES round 21). Thread 0 looks at it
  // only after a task that polls (MPK_TASK_POLLS): two dependent loads after every task
  // and two before every wait made each step 0.6-2.3% slower (NOTES round 22).
  __shared__ volatile int* poll_stuck;
  if (threadIdx.x == 0) poll_stuck = launch.poll_stuck_bytes ? reinterpret_cast<int*>(scratch - 16) : nullptr;

  // Each queue position's weight record, and the cached copy of its task, which holds
  // the task's global id where `group` was (the kernel never reads the group): thread 0
  // then needs no global load for it while it waits.
  for (int q = queue_begin + threadIdx.x; q < queue_end; q += blockDim.x) {
    const int task_id = launch.queue_tasks[q];
    MpkTask task = launch.tasks[task_id];
    if (launch.prefetch != nullptr) {
      const MpkPrefetch p = launch.prefetch[task_id];
      const auto address = [&](int buffer, int offset) {
        return reinterpret_cast<const char*>(launch.buffer_ptrs[buffer]) + offset;
      };
      TaskWeights w{{nullptr, nullptr}, 0, 0};
      if (staging && (task.flags & MPK_TASK_STAGED))
        w = {{address(p.buffer, p.offset), p.second_buffer >= 0 ? address(p.second_buffer, p.second_offset) : nullptr},
             p.bytes, p.row_bytes};
      else if (p.buffer >= 0 && p.row_bytes == 0 && p.bytes > 0 && p.bytes <= MPK_WAIT_PREFETCH_MAX_BYTES)
        w = {{address(p.buffer, p.offset), nullptr}, p.bytes, 0};
      weights_of[q - queue_begin] = w;
    }
    if (cache != nullptr) {
      task.group = task_id;
      cache[q - queue_begin] = task;
    }
  }
  const unsigned int side_lane = (blockDim.x / 32 - 1) * 32;   // lane 0 of the last warp (one warp: none)

  Ring weights{&launch, weights_of, queue_len, -1, 0, 0u, 0u, 0, 0, ring, ring_full, ring_offset, ring_held};
  // Warp 1 issues the copies, so that thread 0 goes on to the next task's wait meanwhile.
  const unsigned int copy_warp_index = 1 % (blockDim.x / 32);
  const bool copy_warp = threadIdx.x / 32 == copy_warp_index;
  if (copy_warp && staging && threadIdx.x % 32 == 0) {
    for (int s = 0; s < launch.ring_depth; ++s)
      asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(shared_address(ring_full + s)) : "memory");
    asm volatile("fence.mbarrier_init.release.cluster;\n\tfence.proxy.async.shared::cta;" ::: "memory");
  }
  if (threadIdx.x == 0) {
    inputs_seen = 0;
    if (poll_stuck) *poll_stuck = 0;
  }
  __syncthreads();  // the task cache and the weight records are filled, the ring's mbarriers exist
  if (copy_warp && staging) weights.fill();   // thread 0 waits on the mbarriers, not on this

  // Moves `p` (in shared memory) to its next queue position, in queue order, then
  // the next step; returns the new position.
  const auto advance = [&](Position& p) {
    Position at = p;
    if (++at.q == queue_end) {
      at.q = queue_begin;
      ++at.step;
    }
    p = at;
    return at;
  };
  // The task at queue position q, from the task cache when there is one, and its global id.
  const auto task_at = [&](int q) { return cache != nullptr ? cache[q - queue_begin] : launch.tasks[launch.queue_tasks[q]]; };
  const auto id_of = [&](const MpkTask& task, int q) { return cache != nullptr ? task.group : launch.queue_tasks[q]; };
  // The task's buffer list into shared memory: all its loads (the table is padded),
  // then `meanwhile()` (more loads of the same round trip), then the stores.
  const auto copy_buffer_list = [&](const MpkTask& task, auto&& meanwhile) {
    unsigned long long list[MPK_GROUP_BUFFERS_MAX];
    for (int k = 0; k < MPK_GROUP_BUFFERS_MAX; ++k) list[k] = launch.buffer_ptrs[task.buffers + k];
    const auto result = meanwhile();
    for (int k = 0; k < MPK_GROUP_BUFFERS_MAX; ++k) buffer_list[k] = list[k];
    return result;
  };
  if (threadIdx.x == 0) {
    lead = {queue_end - 1, -1};
    chunks_used = 0;
  }
  if (threadIdx.x == side_lane) side = {queue_end - 1, -1};
  while (queue_len > 0) {   // uniform across the CTA, like `proceed`
    if (threadIdx.x == 0) {
      const Position at = advance(lead);
      const MpkTask task = task_at(at.q);
      const int task_id = id_of(task, at.q);
      if (side_lane == 0) copy_buffer_list(task, [] { return 0; });   // one warp: no side lane
      // Past the last step: done. Another worker gave up: stop too (checked once a
      // step; a task's wait checks, too).
      bool ok = at.step < launch.steps && (at.q != queue_begin || load_volatile(&launch.error->code) == MPK_OK);
      if (ok && task.wait_slot >= 0)
        ok = wait_for_event(launch, task_id, task.wait_slot, (unsigned int)task.wait_triggers * (unsigned int)(at.step + 1),
                            at.step, task.flags & MPK_TASK_WAIT_ON_RANKS);
      staged = nullptr;
      if (ok && staging && (task.flags & MPK_TASK_STAGED)) {
        ok = weights.arrived(chunks_used, launch.timeout_ns);
        if (ok) staged = weights.chunk(chunks_used++);
        else record_error(launch, MPK_ERROR_STAGE_TIMEOUT, task_id, -1, at.step, chunks_used, 0);
      }
      unsigned long long* profile =
          launch.profile ? launch.profile + 2 * ((long long)at.step * launch.num_tasks + task_id) : nullptr;
      running = {task.fn, task.task, at.step, task_id, task.trigger_slot, task.flags, profile ? profile + 1 : nullptr};
      proceed = ok;
      if (ok && profile) *profile = global_time_ns();
      atomicExch(&inputs_seen, 1);
    } else if (threadIdx.x == side_lane) {
      const Position at = advance(side);
      const MpkTask task = task_at(at.q);
      const unsigned int expected = (unsigned int)task.wait_triggers * (unsigned int)(at.step + 1);
      // A (relaxed) look at the counter beside the list's loads: a task whose event is
      // complete costs the side lane one round trip, as it does thread 0.
      const bool waits = copy_buffer_list(task, [&] {
        return at.step < launch.steps && task.wait_slot >= 0 &&
               load_relaxed(launch.event_counters + task.wait_slot) < expected;
      });
      // Inputs not ready yet: use the wait to bring what the task reads into L2, what
      // its prefetch function finds at run time or its weights (the static range);
      // unless thread 0 has seen them meanwhile (a prefetch then holds the task back).
      if (waits && atomicAdd(&inputs_seen, 0) == 0) {
        if (task.flags & MPK_TASK_PREFETCH) mpk_prefetch_dispatch(task.fn, task.task, at.step, buffer_list);
        else if (launch.prefetch != nullptr) prefetch_weights_l2(weights_of[at.q - queue_begin]);
      } else if ((task.flags & MPK_TASK_POLLS) && task.wait_slot < 0 && at.step < launch.steps) {
        // No counter to wait for: its loads poll their inputs. Issued beside the poll, what
        // it reads comes into L2 while the inputs are not there yet.
        if (task.flags & MPK_TASK_PREFETCH) mpk_prefetch_dispatch(task.fn, task.task, at.step, buffer_list);
        else if (launch.prefetch != nullptr) prefetch_weights_l2(weights_of[at.q - queue_begin]);
      }
    }
    __syncthreads();
    if (!proceed) break;  // uniform across the CTA
    if (threadIdx.x == 0) inputs_seen = 0;   // for the next task (the barriers order it)
    // The copy warp notes whether this task holds a chunk (before thread 0 resets
    // `staged`), in shared memory: kept in a register, the flag would be spilled
    // across the call and thread 0 would wait for its reload too.
    if (staging && thread_index() / 32 == copy_warp_index) chunk_in_use = staged != nullptr;

    mpk_dispatch(running.fn, running.task, running.step, buffer_list, scratch, staged);
    __syncthreads();

    if (threadIdx.x == 0) {
      const int slot = running.trigger_slot, flags = running.flags;
      const bool stuck = (flags & MPK_TASK_POLLS) && *poll_stuck;
      if (stuck) {
        // Its flagged inputs never came: no trigger, and the next task is past the last step.
        record_error(launch, MPK_ERROR_POLL_TIMEOUT, running.id, -1, running.step, 0, 0);
        lead = {queue_end - 1, launch.steps};
      }
#if MPK_PROFILE_END_AFTER_FENCE
      if (slot >= 0 && !(flags & (MPK_TASK_TRIGGER_EVERY_RANK | MPK_TASK_TRIGGER_ONE_RANK)))
        fence_acq_rel_gpu();   // the release's fence, here to be timed (the add below is relaxed)
#endif
      if (running.profile_end && !stuck) *running.profile_end = global_time_ns();
      // The barrier above orders every thread's writes before this release (cumulative).
      // The release is a fence (MEMBAR.ALL.GPU) and the add: on the H200 the fence is
      // ~0.35 us of every ~1 us hop, with or without loads in flight (bench/NOTES.md round 20).
      if (slot >= 0 && !stuck) {
        if (flags & MPK_TASK_TRIGGER_EVERY_RANK)
          for (int k = 0; k < launch.ranks; ++k) trigger_on_rank(launch, slot, k);
        else if (flags & MPK_TASK_TRIGGER_ONE_RANK)
          trigger_on_rank(launch, slot, flags >> MPK_TASK_RANK_SHIFT);
#if MPK_PROFILE_END_AFTER_FENCE
        else add_relaxed(launch.event_counters + slot, 1u);
#else
        else add_release(launch.event_counters + slot, 1u);
#endif
      }
    }
    // Its chunk is free: copy the next staged tasks' rows.
    if (staging && thread_index() / 32 == copy_warp_index && chunk_in_use) {
      asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
      weights.free_oldest();
      weights.fill();
    }
  }
  // After an error, let the copies still in flight land before the shared memory goes away.
  if (copy_warp && threadIdx.x % 32 == 0)
    for (unsigned int u = weights.freed; u < weights.issued; ++u) weights.arrived(u, launch.timeout_ns);
}
