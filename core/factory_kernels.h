// Kernels that make tensors: fill, arange, linspace and the Philox random draws. One body each,
// run by CpuLaunch (core/factories.cpp) or CudaLaunch (core/cuda/factory_kernels.cu).
#pragma once

#include <cmath>

#include "core/copy.h"
#include "core/random.h"
#include "core/strided.h"
#include "core/tensor.h"

namespace tessera {

template <class T>
struct FillKernel {
  T* out;
  T value;
  StridedIndex<1> index;
  bool contiguous;
  TS_HD void operator()(int64_t i) const {
    if (contiguous) {
      out[i] = value;
    } else {
      int64_t off[1];
      index.offsets(i, off);
      out[off[0]] = value;
    }
  }
};

// out[i] = start + i * step, computed in double and cast once (as PyTorch does for arange).
template <class T>
struct ArangeKernel {
  T* out;
  double start, step;
  TS_HD void operator()(int64_t i) const { out[i] = static_cast<T>(start + static_cast<double>(i) * step); }
};

// PyTorch's linspace: the first half counts up from start, the second half down from end, so
// both ends are exact.
template <class T>
struct LinspaceKernel {
  T* out;
  double start, end, step;
  int64_t steps;
  TS_HD void operator()(int64_t i) const {
    const double v = i < steps / 2 ? start + step * static_cast<double>(i)
                                   : end - step * static_cast<double>(steps - 1 - i);
    out[i] = static_cast<T>(v);
  }
};

enum class RandomDist { Uniform, Normal, Integer };

// Values one Philox block yields: four 24-bit floats, two 53-bit doubles, two 64-bit integers.
inline int values_per_block(RandomDist dist, DType dtype) {
  if (dist == RandomDist::Integer) return 2;
  return dtype == DType::Float64 ? 2 : 4;
}

template <class T>
struct RandomKernel {
  T* out;
  int64_t n;
  uint64_t seed, offset;
  RandomDist dist;
  double low, high;            // Uniform: [low, high)
  int64_t int_low;             // Integer: [int_low, int_low + int_range)
  uint64_t int_range;

  TS_HD void operator()(int64_t block) const {
    const Philox4x32 r = philox_block(seed, offset, static_cast<uint64_t>(block));
    constexpr double kTwoPi = 6.283185307179586476925286766559;
    if (dist == RandomDist::Integer) {
      const uint64_t a = (static_cast<uint64_t>(r.v[0]) << 32) | r.v[1];
      const uint64_t b = (static_cast<uint64_t>(r.v[2]) << 32) | r.v[3];
      store(block * 2, 2, static_cast<T>(int_low + static_cast<int64_t>(a % int_range)),
            static_cast<T>(int_low + static_cast<int64_t>(b % int_range)), T(0), T(0));
      return;
    }
    if constexpr (sizeof(T) == 8) {  // double: 53-bit uniforms, two per block
      const double u0 = uniform_double(r.v[0], r.v[1]);
      const double u1 = uniform_double(r.v[2], r.v[3]);
      if (dist == RandomDist::Uniform) {
        store(block * 2, 2, static_cast<T>(low + (high - low) * u0), static_cast<T>(low + (high - low) * u1),
              T(0), T(0));
      } else {
        const double rad = sqrt(-2.0 * log(1.0 - u0));  // 1 - u0 is in (0, 1]
        store(block * 2, 2, static_cast<T>(rad * cos(kTwoPi * u1)), static_cast<T>(rad * sin(kTwoPi * u1)),
              T(0), T(0));
      }
    } else {  // float: 24-bit uniforms, four per block
      double u[4];
      for (int k = 0; k < 4; ++k) u[k] = static_cast<double>(uniform_float(r.v[k]));
      if (dist == RandomDist::Uniform) {
        store(block * 4, 4, static_cast<T>(low + (high - low) * u[0]), static_cast<T>(low + (high - low) * u[1]),
              static_cast<T>(low + (high - low) * u[2]), static_cast<T>(low + (high - low) * u[3]));
      } else {
        const double r0 = sqrt(-2.0 * log(1.0 - u[0])), r1 = sqrt(-2.0 * log(1.0 - u[2]));
        store(block * 4, 4, static_cast<T>(r0 * cos(kTwoPi * u[1])), static_cast<T>(r0 * sin(kTwoPi * u[1])),
              static_cast<T>(r1 * cos(kTwoPi * u[3])), static_cast<T>(r1 * sin(kTwoPi * u[3])));
      }
    }
  }

  TS_HD void store(int64_t first, int count, T a, T b, T c, T d) const {
    const T v[4] = {a, b, c, d};
    for (int k = 0; k < count; ++k)
      if (first + k < n) out[first + k] = v[k];
  }
};

template <class Launch>
void fill_kernel(const Launch& launch, const Tensor& dst, double value) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  dispatch_all_with_half(dst.dtype(), "fill_", [&]<class T>() {
    FillKernel<T> k{static_cast<T*>(dst.data_ptr()), cast_value<T>(value), {}, dst.is_contiguous()};
    if (!k.contiguous) k.index = make_strided_index<1>(dst.shape(), {dst.strides()});
    launch(n, k, "fill_kernel");
  });
}

template <class Launch>
void arange_kernel(const Launch& launch, const Tensor& out, double start, double step) {
  dispatch_numeric_with_half(out.dtype(), "arange", [&]<class T>() {
    launch(out.numel(), ArangeKernel<T>{static_cast<T*>(out.data_ptr()), start, step}, "arange_kernel");
  });
}

template <class Launch>
void linspace_kernel(const Launch& launch, const Tensor& out, double start, double end) {
  const int64_t steps = out.numel();
  const double step = steps > 1 ? (end - start) / static_cast<double>(steps - 1) : 0.0;
  dispatch_numeric_with_half(out.dtype(), "linspace", [&]<class T>() {
    launch(steps, LinspaceKernel<T>{static_cast<T*>(out.data_ptr()), start, end, step, steps}, "linspace_kernel");
  });
}

// Fills the contiguous tensor `out` from blocks [offset, offset + blocks) of the seed's stream.
template <class Launch>
void random_kernel(const Launch& launch, const Tensor& out, RandomDist dist, double low, double high,
                   uint64_t seed, uint64_t offset) {
  const int64_t n = out.numel();
  const int per = values_per_block(dist, out.dtype());
  const int64_t blocks = (n + per - 1) / per;
  dispatch_numeric(out.dtype(), "random", [&]<class T>() {
    RandomKernel<T> k{static_cast<T*>(out.data_ptr()), n, seed, offset, dist, low, high,
                      static_cast<int64_t>(low), static_cast<uint64_t>(static_cast<int64_t>(high) - static_cast<int64_t>(low))};
    launch(blocks, k, "random_kernel");
  });
}

void fill_kernel_cuda(const Tensor& dst, double value);
void arange_kernel_cuda(const Tensor& out, double start, double step);
void linspace_kernel_cuda(const Tensor& out, double start, double end);
void random_kernel_cuda(const Tensor& out, RandomDist dist, double low, double high, uint64_t seed, uint64_t offset);

}  // namespace tessera
