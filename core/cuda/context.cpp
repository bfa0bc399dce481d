// CUDA context: driver probe, per-device stream and library handles, launch checks.
#include "core/cuda/context.h"

#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/cuda.h"
#include "core/cuda/check.h"
#include "core/cuda/cublas_lazy.h"

namespace tessera::cuda {

namespace {

struct Probe {
  int count = 0;
  std::string reason;
};

const Probe& probe() {
  static const Probe p = [] {
    Probe r;
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
      cudaGetLastError();  // clear the sticky error so it does not surface elsewhere
      r.reason = std::string("no usable CUDA driver: ") + cudaGetErrorName(err) + " (" +
                 cudaGetErrorString(err) + ")";
      return r;
    }
    if (n == 0) {
      r.reason = "no CUDA device found";
      return r;
    }
    r.count = n;
    return r;
  }();
  return p;
}

struct DeviceContext {
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  cudnnHandle_t cudnn = nullptr;
  std::once_flag stream_once, cublas_once, cudnn_once;
};

DeviceContext& context(int device) {
  static std::vector<std::unique_ptr<DeviceContext>> contexts = [] {
    std::vector<std::unique_ptr<DeviceContext>> v;
    for (int i = 0; i < probe().count; ++i) v.push_back(std::make_unique<DeviceContext>());
    return v;
  }();
  TS_CHECK(is_available(), "CUDA is not available: ", unavailable_reason());
  TS_CHECK(device >= 0 && device < static_cast<int>(contexts.size()), "cuda:", device,
           " does not exist: this machine has ", contexts.size(), " CUDA device(s)");
  return *contexts[device];
}

}  // namespace

bool built_with_cuda() { return true; }
bool is_available() { return probe().count > 0; }
int device_count() { return probe().count; }
std::string unavailable_reason() { return is_available() ? std::string() : probe().reason; }

DeviceGuard::DeviceGuard(int device) {
  TS_CUDA_CHECK(cudaGetDevice(&previous_));
  if (previous_ != device) TS_CUDA_CHECK(cudaSetDevice(device));
}
DeviceGuard::~DeviceGuard() {
  int now = -1;
  if (cudaGetDevice(&now) == cudaSuccess && now != previous_ && previous_ >= 0) cudaSetDevice(previous_);
}

cudaStream_t stream(int device) {
  DeviceContext& c = context(device);
  std::call_once(c.stream_once, [&] {
    DeviceGuard g(device);
    TS_CUDA_CHECK(cudaStreamCreateWithFlags(&c.stream, cudaStreamNonBlocking));
  });
  return c.stream;
}

cublasHandle_t cublas_handle(int device) {
  DeviceContext& c = context(device);
  cudaStream_t s = stream(device);
  std::call_once(c.cublas_once, [&] {
    DeviceGuard g(device);
    const CublasApi& api = cublas();  // loaded here, on first use
    TS_CUBLAS_CHECK(api.create(&c.cublas));
    TS_CUBLAS_CHECK(api.set_stream(c.cublas, s));
    // Full float32 products unless a caller opts into TF32 (PyTorch's default for matmul).
    TS_CUBLAS_CHECK(api.set_math_mode(c.cublas, CUBLAS_DEFAULT_MATH));
  });
  return c.cublas;
}

cudnnHandle_t cudnn_handle(int device) {
  DeviceContext& c = context(device);
  cudaStream_t s = stream(device);
  std::call_once(c.cudnn_once, [&] {
    DeviceGuard g(device);
    TS_CUDNN_CHECK(cudnnCreate(&c.cudnn));
    TS_CUDNN_CHECK(cudnnSetStream(c.cudnn, s));
  });
  return c.cudnn;
}

namespace {
// Per device: one int of pinned host memory, mapped into the device's address space.
struct ErrorWord {
  int* host = nullptr;
  int* device = nullptr;
  std::once_flag once;
};
ErrorWord& error_word(int device) {
  static std::vector<std::unique_ptr<ErrorWord>> words = [] {
    std::vector<std::unique_ptr<ErrorWord>> v;
    for (int i = 0; i < probe().count; ++i) v.push_back(std::make_unique<ErrorWord>());
    return v;
  }();
  context(device);  // checks the index
  ErrorWord& w = *words[static_cast<size_t>(device)];
  std::call_once(w.once, [&] {
    DeviceGuard g(device);
    TS_CUDA_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&w.host), sizeof(int), cudaHostAllocMapped));
    *w.host = 0;
    TS_CUDA_CHECK(cudaHostGetDevicePointer(reinterpret_cast<void**>(&w.device), w.host, 0));
  });
  return w;
}
}  // namespace

int* device_error_word(int device) { return error_word(device).device; }

void check_device_errors(int device) {
  ErrorWord& w = error_word(device);
  const int code = *static_cast<volatile int*>(w.host);
  if (code == 0) return;
  *w.host = 0;
  TS_ERROR(device_error_op(static_cast<DeviceError>(code)), ": index out of range on cuda:", device,
           " (a kernel found an index outside its dimension; reported at the next synchronisation, after the op "
           "that caused it: run with TESSERA_SYNC_DEBUG=1 to stop at the op itself)");
}

void synchronize(int index) {
  if (!is_available()) return;
  if (index >= 0) {
    DeviceGuard g(index);
    TS_CUDA_CHECK(cudaStreamSynchronize(stream(index)));
    check_device_errors(index);
    return;
  }
  for (int i = 0; i < device_count(); ++i) synchronize(i);
}

int grid_size_for(int64_t n, int block_size) {
  static const int max_blocks = [] {
    int dev = 0, sms = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) {
      cudaGetLastError();
      sms = 80;
    }
    return sms * 32;  // 32 resident 256-thread blocks' worth per SM is plenty for grid-stride
  }();
  int64_t blocks = (n + block_size - 1) / block_size;
  return static_cast<int>(blocks < max_blocks ? blocks : max_blocks);
}

bool sync_debug() {
  static const bool on = [] {
    const char* v = std::getenv("TESSERA_SYNC_DEBUG");
    return v != nullptr && std::string(v) == "1";
  }();
  return on;
}

void check_launch(const char* kernel, const char* file, int line) {
  cudaError_t err = cudaGetLastError();
  if (err == cudaSuccess && sync_debug()) {
    err = cudaDeviceSynchronize();
    if (err != cudaSuccess) cudaGetLastError();
  }
  if (err != cudaSuccess)
    throw Error(file, line, std::string("CUDA kernel ") + kernel + " failed: " + cudaGetErrorName(err) +
                                " (" + cudaGetErrorString(err) + ")");
}

const char* cublas_status_name(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "CUBLAS_STATUS_UNKNOWN";
  }
}

}  // namespace tessera::cuda
