// Task code for the CMake package test: dispatchers that do nothing, and a
// host main that only takes the kernel's address (nothing runs at build time).
#include <cstdio>
#include "mpk_runtime.h"

extern "C" __device__ void mpk_dispatch(int, int, int, const unsigned long long*, char*, const char*) {}
extern "C" __device__ void mpk_prefetch_dispatch(int, int, int, const unsigned long long*) {}

int main() {
  std::printf("mpk_persistent_kernel at %p\n", reinterpret_cast<void*>(&mpk_persistent_kernel));
  return 0;
}
