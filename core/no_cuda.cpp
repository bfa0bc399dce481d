// The CUDA entry points of a CPU-only build (-DTESSERA_CUDA=OFF): everything reports "no CUDA".
#include "core/allocator.h"
#include "core/cuda.h"
#include "core/error.h"

namespace tessera::cuda {
bool built_with_cuda() { return false; }
bool is_available() { return false; }
int device_count() { return 0; }
std::string unavailable_reason() { return "tessera was built without CUDA (-DTESSERA_CUDA=OFF)"; }
void synchronize(int) {}
MemoryStats memory_stats(int) { TS_ERROR("memory_stats: tessera was built without CUDA"); }
void reset_peak_memory_stats(int) { TS_ERROR("reset_peak_memory_stats: tessera was built without CUDA"); }
std::string memory_summary(int) { TS_ERROR("memory_summary: tessera was built without CUDA"); }
void empty_cache() {}
int* device_error_word(int device) { TS_ERROR("cuda:", device, ": tessera was built without CUDA"); }
void check_device_errors(int) {}
}  // namespace tessera::cuda

namespace tessera {
Allocator* cuda_allocator(int index) {
  TS_ERROR("cannot allocate on cuda:", index, ": tessera was built without CUDA (-DTESSERA_CUDA=OFF)");
}
}  // namespace tessera
