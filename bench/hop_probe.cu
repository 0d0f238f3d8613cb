// The hop microbenchmark (bench/hop.py): what one dependency hop of the
// persistent kernel costs on this GPU, apart from the model.
//
//   hop_ping_pong        two CTAs on different SMs bounce a counter (st.release /
//                        ld.acquire, gpu scope): the one-way flag latency.
//   hop_stages_load      one CTA per SM runs `stages` dependent stages: wait until
//   hop_stages_prefetch  every CTA bumped the counter for the previous stage, read
//                        this stage's own weight slice, bump the counter. `load`
//                        issues its loads after the wait; `prefetch` has the
//                        slices streaming into a shared-memory ring (cp.async.bulk,
//                        mbarrier completion) long before, as the runtime's weight
//                        stages do: weights depend on no event.
//
// No CUDA headers (NVRTC), like runtime/mpk_runtime.cu, whose signalling
// primitives it uses (runtime/mpk_sync.h). Every spin gives up after
// kTimeoutNs and sets *failed, so a grid that is not all resident ends in an
// error on the host, never a hang.

#include "mpk_sync.h"

namespace {

constexpr unsigned long long kTimeoutNs = 1000000000ull;   // 1 s
constexpr int kMaxThreads = 512;
constexpr int kMaxSlots = 32;                               // mbarriers of the prefetch ring
constexpr int kLoadBatch = 8;                               // 16-byte loads in flight per thread

struct alignas(16) Words4 {
  unsigned int x, y, z, w;
};

__device__ __forceinline__ void store_release(unsigned int* p, unsigned int v) {
  asm volatile("st.release.gpu.global.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}

// Streamed once: no L1 allocation (the slices never come back).
__device__ __forceinline__ unsigned int load_xor16(const char* p) {
  unsigned int a, b, c, d;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(a), "=r"(b), "=r"(c), "=r"(d) : "l"(p));
  return a ^ b ^ c ^ d;
}

// Spins (one thread, no sleep: the latency is what is measured) until *counter >= target.
// False on timeout, or when another CTA timed out already (then no one waits any more).
__device__ bool wait_at_least(const unsigned int* counter, unsigned int target, unsigned int* failed) {
  if (load_acquire(counter) >= target) return true;
  const unsigned long long start = global_time_ns();
  for (unsigned int spins = 1;; ++spins) {
    if (load_acquire(counter) >= target) return true;
    if ((spins & 255u) == 0) {
      if (*static_cast<volatile unsigned int*>(failed) != 0u) return false;
      if (global_time_ns() - start > kTimeoutNs) {
        *static_cast<volatile unsigned int*>(failed) = 1u;
        return false;
      }
    }
  }
}

// Stage s of CTA b reads slice (s * grid + b) mod slices: distinct memory per stage
// and CTA, cycling through a buffer far larger than L2, so every read is from HBM.
__device__ __forceinline__ const char* slice(const char* weights, unsigned long long slices, int bytes_per_cta,
                                             int stage) {
  return weights + ((unsigned long long)stage * gridDim.x + blockIdx.x) % slices * (unsigned long long)bytes_per_cta;
}

}  // namespace

// Grid of 2 CTAs of one warp on different SMs (the host asks for more than half an SM's
// shared memory). CTA 0 waits for even values and writes odd ones, CTA 1 the reverse.
// Release/acquire as the runtime's events: st.release costs a MEMBAR.GPU, about half of
// the latency on an H200 (relaxed stores and loads took ~260 ns one way, these ~520).
// out[0]: ns of `rounds` round trips as CTA 0 sees them (after `warmup`); out[1..2]: the SMs.
extern "C" __global__ void hop_ping_pong(unsigned int* ball, unsigned int* failed, int warmup, int rounds,
                                         unsigned long long* out) {
  if (threadIdx.x != 0) return;
  const unsigned int me = blockIdx.x;
  out[1 + me] = sm_id();
  unsigned long long start = 0;
  const int last = warmup + rounds;     // CTA 0's wait in round `last` ends the last round trip
  for (int r = 0; r <= last; ++r) {
    if (me == 1 && r == last) break;
    if (!wait_at_least(ball, 2u * r + me, failed)) return;
    if (me == 0 && r == warmup) start = global_time_ns();
    if (me == 0 && r == last) {
      out[0] = global_time_ns() - start;
      return;
    }
    store_release(ball, 2u * r + me + 1u);
  }
}

// Loads issued after the wait: kLoadBatch 16-byte loads per thread in flight at a time.
extern "C" __global__ void __launch_bounds__(kMaxThreads, 1)
hop_stages_load(const char* weights, unsigned long long slices, unsigned int* counter, unsigned int* failed,
                int stages, int bytes_per_cta, unsigned int* sink) {
  __shared__ volatile unsigned int used[kMaxThreads];
  const int vectors = bytes_per_cta / 16;
  unsigned int acc = 0;
  for (int s = 0; s < stages; ++s) {
    if (threadIdx.x == 0) wait_at_least(counter, gridDim.x * (unsigned int)s, failed);
    __syncthreads();
    const char* p = slice(weights, slices, bytes_per_cta, s);
    for (int base = threadIdx.x; base < vectors; base += kLoadBatch * blockDim.x) {
      unsigned int v[kLoadBatch];
#pragma unroll
      for (int k = 0; k < kLoadBatch; ++k) {
        const int i = base + k * blockDim.x;
        v[k] = i < vectors ? load_xor16(p + 16ll * i) : 0u;
      }
#pragma unroll
      for (int k = 0; k < kLoadBatch; ++k) acc ^= v[k];
    }
    used[threadIdx.x] = acc;   // the stage's loads have landed before the barrier (and the release)
    __syncthreads();
    if (threadIdx.x == 0) add_release(counter, 1u);
  }
  sink[blockIdx.x * blockDim.x + threadIdx.x] = acc;
}

// Weights in flight across the wait. The CTA's slices, stage after stage, are one stream
// of `chunk_bytes` chunks through a ring of `slots` chunks in dynamic shared memory, each
// slot completing on its mbarrier; a slot is refilled with the chunk `slots` ahead as soon
// as it is read. With slots >= 2 stages of chunks, stage s+1's weights stream in while
// stage s waits and runs (as the runtime's weight ring would); with fewer (128 KB and up
// do not fit twice), as much of it as the ring holds.
extern "C" __global__ void __launch_bounds__(kMaxThreads, 1)
hop_stages_prefetch(const char* weights, unsigned long long slices, unsigned int* counter, unsigned int* failed,
                    int stages, int bytes_per_cta, int chunk_bytes, int slots, unsigned int* sink) {
  extern __shared__ __align__(128) char ring[];
  __shared__ __align__(8) unsigned long long full[kMaxSlots];
  __shared__ volatile unsigned int used[kMaxThreads];
  const int chunks = bytes_per_cta / chunk_bytes;   // per stage

  // Thread 0's copy stream: the next chunk to issue (stage, chunk of it) and its slot.
  int issue_stage = 0, issue_chunk = 0, issue_slot = 0;
  auto issue_next = [&]() {
    if (issue_stage >= stages) return;
    const unsigned int bar = shared_address(full + issue_slot);
    const char* src = slice(weights, slices, bytes_per_cta, issue_stage) + (long long)issue_chunk * chunk_bytes;
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(chunk_bytes) : "memory");
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];"
                 ::"r"(shared_address(ring + (long long)issue_slot * chunk_bytes)), "l"(src), "r"(chunk_bytes),
                   "r"(bar) : "memory");
    if (++issue_chunk == chunks) issue_chunk = 0, ++issue_stage;
    if (++issue_slot == slots) issue_slot = 0;
  };

  if (threadIdx.x == 0) {
    for (int k = 0; k < slots; ++k)
      asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(shared_address(full + k)) : "memory");
    asm volatile("fence.mbarrier_init.release.cluster;\n\tfence.proxy.async.shared::cta;" ::: "memory");
    for (int k = 0; k < slots; ++k) issue_next();
  }
  __syncthreads();

  unsigned int acc = 0, slot = 0, parity = 0;   // the next chunk to read: its slot, its phase's parity
  for (int s = 0; s < stages; ++s) {
    if (threadIdx.x == 0) wait_at_least(counter, gridDim.x * (unsigned int)s, failed);
    __syncthreads();
    for (int c = 0; c < chunks; ++c) {
      const unsigned int bar = shared_address(full + slot);
      for (unsigned int done = 0; !done;)
        asm volatile("{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }"
                     : "=r"(done) : "r"(bar), "r"(parity) : "memory");
      const Words4* words = reinterpret_cast<const Words4*>(ring + (long long)slot * chunk_bytes);
      for (int i = threadIdx.x; i < chunk_bytes / 16; i += blockDim.x) {
        const Words4 w = words[i];   // one 16-byte shared load per thread: conflict-free
        acc ^= w.x ^ w.y ^ w.z ^ w.w;
      }
      used[threadIdx.x] = acc;
      __syncthreads();   // every thread is done with the slot (and, at the last chunk, with the stage)
      if (threadIdx.x == 0) {
        if (c == chunks - 1) add_release(counter, 1u);
        // The slot's generic-proxy reads before the bulk copy overwrites it (as the runtime does).
        asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
        issue_next();
      }
      if (++slot == (unsigned int)slots) slot = 0, parity ^= 1u;
    }
  }
  sink[blockIdx.x * blockDim.x + threadIdx.x] = acc;
}
