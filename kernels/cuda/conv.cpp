// CUDA convolution through cuDNN's convolution API. The algorithm for each (shape, dtype,
// direction, search mode) is chosen once and cached: by default from cuDNN's heuristics
// (cudnnGet*Algorithm_v7: the first that succeeds within the workspace limit); with
// set_cudnn_benchmark(true) by timed trials (cudnnFind*AlgorithmEx) on scratch buffers.
// Workspaces come from the caching allocator.
// float32 runs with CUDNN_FMA_MATH (no TF32, so results match the CPU's float32 closely) unless
// set_cuda_allow_tf32(true); float16 / bfloat16 data run on the tensor cores with float32 compute
// (cuDNN's pseudo-half configurations), their alpha/beta in float.
#include <cstdio>
#include <mutex>
#include <string>
#include <unordered_map>

#include "core/cuda/check.h"
#include "core/cuda/context.h"
#include "core/view.h"
#include "kernels/conv.h"
#include "kernels/conv_settings.h"

namespace tessera {

namespace {

constexpr size_t kWorkspaceLimit = size_t{1} << 30;

struct Descriptors {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  cudnnDataType_t dtype;

  Descriptors(const Conv2dGeometry& g, DType dt) {
    dtype = dt == DType::Float64    ? CUDNN_DATA_DOUBLE
            : dt == DType::Float16  ? CUDNN_DATA_HALF
            : dt == DType::BFloat16 ? CUDNN_DATA_BFLOAT16
                                    : CUDNN_DATA_FLOAT;
    const cudnnDataType_t compute = dt == DType::Float64 ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT;
    TS_CUDNN_CHECK(cudnnCreateTensorDescriptor(&x));
    TS_CUDNN_CHECK(cudnnCreateTensorDescriptor(&y));
    TS_CUDNN_CHECK(cudnnCreateFilterDescriptor(&w));
    TS_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv));
    TS_CUDNN_CHECK(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, dtype, int(g.N), int(g.C), int(g.H), int(g.W)));
    TS_CUDNN_CHECK(cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NCHW, dtype, int(g.N), int(g.O), int(g.Ho), int(g.Wo)));
    TS_CUDNN_CHECK(cudnnSetFilter4dDescriptor(w, dtype, CUDNN_TENSOR_NCHW, int(g.O), int(g.Cg()), int(g.kh), int(g.kw)));
    TS_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(conv, int(g.pad_h), int(g.pad_w), int(g.stride_h), int(g.stride_w),
                                                   int(g.dil_h), int(g.dil_w), CUDNN_CROSS_CORRELATION, compute));
    TS_CUDNN_CHECK(cudnnSetConvolutionGroupCount(conv, int(g.groups)));
    const cudnnMathType_t math = dt == DType::Float64                        ? CUDNN_DEFAULT_MATH
                                 : is_half(dt) || cuda_allow_tf32() ? CUDNN_TENSOR_OP_MATH
                                                                    : CUDNN_FMA_MATH;
    TS_CUDNN_CHECK(cudnnSetConvolutionMathType(conv, math));
  }
  ~Descriptors() {
    cudnnDestroyTensorDescriptor(x);
    cudnnDestroyTensorDescriptor(y);
    cudnnDestroyFilterDescriptor(w);
    cudnnDestroyConvolutionDescriptor(conv);
  }
  Descriptors(const Descriptors&) = delete;
  Descriptors& operator=(const Descriptors&) = delete;
};

enum class Direction { Forward, BackwardData, BackwardFilter };

struct Choice {
  int algo = 0;
  size_t workspace = 0;
};

std::string cache_key(const Conv2dGeometry& g, DType dt, Direction dir, int device) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "%d|%d|%d|%d|%d|%lld,%lld,%lld,%lld|%lld,%lld,%lld|%lld,%lld,%lld,%lld,%lld,%lld,%lld", device,
                int(dir), int(dt), int(cudnn_benchmark()), int(cuda_allow_tf32()), (long long)g.N, (long long)g.C, (long long)g.H, (long long)g.W, (long long)g.O,
                (long long)g.kh, (long long)g.kw, (long long)g.stride_h, (long long)g.stride_w, (long long)g.pad_h,
                (long long)g.pad_w, (long long)g.dil_h, (long long)g.dil_w, (long long)g.groups);
  return buf;
}

Tensor workspace(size_t bytes, int device);

// Timed trials of every algorithm on scratch buffers (the real output must not be clobbered: the
// backward-data contract accumulates into it). Returns the fastest that succeeded.
Choice find_algorithm(const Conv2dGeometry& g, DType dt, Direction dir, int device, cudnnHandle_t handle,
                      const Descriptors& d) {
  const Device dev(DeviceType::CUDA, device);
  Tensor x = raw::empty({g.N, g.C, g.H, g.W}, dt, dev), y = raw::empty({g.N, g.O, g.Ho, g.Wo}, dt, dev);
  Tensor w = raw::empty({g.O, g.Cg(), g.kh, g.kw}, dt, dev);
  raw::fill_(x, 0.5);
  raw::fill_(y, 0.5);
  raw::fill_(w, 0.5);
  const size_t ws_bytes = kWorkspaceLimit / 4;
  Tensor ws = workspace(ws_bytes, device);
  int returned = 0;
  Choice c;
  bool found = false;
  auto take = [&](auto* perf) {
    for (int i = 0; i < returned && !found; ++i)
      if (perf[i].status == CUDNN_STATUS_SUCCESS) {
        c = {int(perf[i].algo), perf[i].memory};
        found = true;
      }
  };
  if (dir == Direction::Forward) {
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    TS_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(handle, d.x, x.data_ptr(), d.w, w.data_ptr(), d.conv, d.y,
                                                          y.data_ptr(), CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &returned, perf,
                                                          ws.data_ptr(), ws_bytes));
    take(perf);
  } else if (dir == Direction::BackwardData) {
    cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    TS_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(handle, d.w, w.data_ptr(), d.y, y.data_ptr(), d.conv, d.x,
                                                               x.data_ptr(), CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
                                                               &returned, perf, ws.data_ptr(), ws_bytes));
    take(perf);
  } else {
    cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    TS_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(handle, d.x, x.data_ptr(), d.y, y.data_ptr(), d.conv, d.w,
                                                                 w.data_ptr(), CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT,
                                                                 &returned, perf, ws.data_ptr(), ws_bytes));
    take(perf);
  }
  TS_CHECK(found, "conv2d: cuDNN's trials found no working algorithm for this convolution");
  return c;
}

// The algorithm for a shape, cached: cuDNN's trials (cudnn_benchmark) or the first of its
// heuristic ranking that works within the workspace limit.
Choice choose(const Conv2dGeometry& g, DType dt, Direction dir, int device, cudnnHandle_t handle, const Descriptors& d) {
  static std::mutex mu;
  static std::unordered_map<std::string, Choice> cache;
  const std::string key = cache_key(g, dt, dir, device);
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;
  }
  if (cudnn_benchmark()) {
    const Choice c = find_algorithm(g, dt, dir, device, handle, d);
    std::lock_guard<std::mutex> lock(mu);
    cache[key] = c;
    return c;
  }
  Choice c;
  bool found = false;
  int returned = 0;
  if (dir == Direction::Forward) {
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    TS_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(handle, d.x, d.w, d.conv, d.y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT,
                                                          &returned, perf));
    for (int i = 0; i < returned && !found; ++i)
      if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= kWorkspaceLimit) {
        c = {int(perf[i].algo), perf[i].memory};
        found = true;
      }
  } else if (dir == Direction::BackwardData) {
    cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    TS_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(handle, d.w, d.y, d.conv, d.x,
                                                               CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &returned, perf));
    for (int i = 0; i < returned && !found; ++i)
      if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= kWorkspaceLimit) {
        c = {int(perf[i].algo), perf[i].memory};
        found = true;
      }
  } else {
    cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    TS_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(handle, d.x, d.y, d.conv, d.w,
                                                                 CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &returned, perf));
    for (int i = 0; i < returned && !found; ++i)
      if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= kWorkspaceLimit) {
        c = {int(perf[i].algo), perf[i].memory};
        found = true;
      }
  }
  TS_CHECK(found, "conv2d: cuDNN offers no algorithm for this convolution within a ", kWorkspaceLimit >> 20,
           " MiB workspace (", key, ")");
  std::lock_guard<std::mutex> lock(mu);
  cache[key] = c;
  return c;
}

struct Scalars {
  float f1 = 1.f, f0 = 0.f;
  double d1 = 1.0, d0 = 0.0;
  const void* one(DType dt) const { return dt == DType::Float64 ? static_cast<const void*>(&d1) : &f1; }
  const void* zero(DType dt) const { return dt == DType::Float64 ? static_cast<const void*>(&d0) : &f0; }
};

Tensor workspace(size_t bytes, int device) {
  return raw::empty({static_cast<int64_t>(bytes) + 1}, DType::UInt8, Device(DeviceType::CUDA, device));
}

}  // namespace

void conv2d_forward_kernel_cuda(const Tensor& out, const Tensor& x, const Tensor& w, const Conv2dGeometry& g) {
  const int device = x.device().index;
  cuda::DeviceGuard guard(device);
  cudnnHandle_t handle = cuda::cudnn_handle(device);
  Descriptors d(g, x.dtype());
  const Choice c = choose(g, x.dtype(), Direction::Forward, device, handle, d);
  Tensor ws = workspace(c.workspace, device);
  Scalars s;
  TS_CUDNN_CHECK(cudnnConvolutionForward(handle, s.one(x.dtype()), d.x, x.data_ptr(), d.w, w.data_ptr(), d.conv,
                                         static_cast<cudnnConvolutionFwdAlgo_t>(c.algo), ws.data_ptr(), c.workspace,
                                         s.zero(x.dtype()), d.y, out.data_ptr()));
}

void conv2d_backward_input_kernel_cuda(const Tensor& grad_x, const Tensor& grad_out, const Tensor& w, const Conv2dGeometry& g) {
  const int device = w.device().index;
  cuda::DeviceGuard guard(device);
  cudnnHandle_t handle = cuda::cudnn_handle(device);
  Descriptors d(g, w.dtype());
  const Choice c = choose(g, w.dtype(), Direction::BackwardData, device, handle, d);
  Tensor ws = workspace(c.workspace, device);
  Scalars s;
  // beta = 1: the contract adds into grad_x.
  TS_CUDNN_CHECK(cudnnConvolutionBackwardData(handle, s.one(w.dtype()), d.w, w.data_ptr(), d.y, grad_out.data_ptr(), d.conv,
                                              static_cast<cudnnConvolutionBwdDataAlgo_t>(c.algo), ws.data_ptr(),
                                              c.workspace, s.one(w.dtype()), d.x, grad_x.data_ptr()));
}

void conv2d_backward_weight_kernel_cuda(const Tensor& grad_w, const Tensor& grad_out, const Tensor& x, const Conv2dGeometry& g) {
  const int device = x.device().index;
  cuda::DeviceGuard guard(device);
  cudnnHandle_t handle = cuda::cudnn_handle(device);
  Descriptors d(g, x.dtype());
  const Choice c = choose(g, x.dtype(), Direction::BackwardFilter, device, handle, d);
  Tensor ws = workspace(c.workspace, device);
  Scalars s;
  TS_CUDNN_CHECK(cudnnConvolutionBackwardFilter(handle, s.one(x.dtype()), d.x, x.data_ptr(), d.y, grad_out.data_ptr(),
                                                d.conv, static_cast<cudnnConvolutionBwdFilterAlgo_t>(c.algo),
                                                ws.data_ptr(), c.workspace, s.zero(x.dtype()), d.w, grad_w.data_ptr()));
}

}  // namespace tessera
