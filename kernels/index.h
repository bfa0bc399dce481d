// Indexing kernels: index_select / index_add (a 1-D index along one dim), gather / scatter_add
// (an index tensor of the output's rank), cumsum, and nonzero. Index values are checked inside the
// kernels: an element whose index is outside [0, bound) is skipped and the kernel writes its code
// into `error` — a host int on the CPU, checked after the launch; on CUDA the device's error word
// (core/cuda.h), raised at the next synchronisation, so that no op waits for the device to check
// its indices (the CPU op layer also checks them first, for a message with the values).
#pragma once

#include "core/cuda.h"
#include "core/strided.h"
#include "core/tensor.h"

namespace tessera {

// out[o, l, i] = x[o, index[l], i]; x: contiguous [outer, D, inner], out: contiguous [outer, L, inner].
template <class T, class I>
struct IndexSelectKernel {
  T* out;
  const T* x;
  const I* index;
  int64_t D, L, inner;
  int* error;
  TS_HD void operator()(int64_t i) const {
    const int64_t in = i % inner, l = (i / inner) % L, o = i / (inner * L);
    const int64_t v = static_cast<int64_t>(index[l]);
    if (v < 0 || v >= D) {
      *error = static_cast<int>(cuda::DeviceError::IndexSelect);
      return;
    }
    out[i] = x[(o * D + v) * inner + in];
  }
};

// out[o, index[l], i] += src[o, l, i] (atomically: an index may repeat).
template <class T, class I>
struct IndexAddKernel {
  T* out;
  const T* src;
  const I* index;
  int64_t D, L, inner;
  int* error;
  TS_HD void operator()(int64_t i) const {
    const int64_t in = i % inner, l = (i / inner) % L, o = i / (inner * L);
    const int64_t v = static_cast<int64_t>(index[l]);
    if (v < 0 || v >= D) {
      *error = static_cast<int>(cuda::DeviceError::IndexAdd);
      return;
    }
    atomic_add(out + (o * D + v) * inner + in, src[i]);
  }
};

// Over the index's shape: offsets (index, other, x-without-dim); element at index value v along dim.
//   gather:      out[off_other] = x[off_x + v * x_dim_stride]
//   scatter_add: out[off_x + v * x_dim_stride] += src[off_other]
template <class T, class I, bool kScatter>
struct GatherScatterKernel {
  T* target;        // gather: out (contiguous, index's shape); scatter: out
  const T* source;  // gather: x; scatter: src
  const I* index;
  int64_t dim_stride;  // stride along dim of the tensor indexed by the index values
  StridedIndex<3> offsets;  // [index, the other tensor (out for gather / src for scatter), the indexed tensor]
  int64_t bound;            // size along dim of the indexed tensor
  int* error;
  TS_HD void operator()(int64_t i) const {
    int64_t off[3];
    offsets.offsets(i, off);
    const int64_t v = static_cast<int64_t>(index[off[0]]);
    if (v < 0 || v >= bound) {
      *error = static_cast<int>(kScatter ? cuda::DeviceError::ScatterAdd : cuda::DeviceError::Gather);
      return;
    }
    if constexpr (kScatter) {
      atomic_add(target + off[2] + v * dim_stride, source[off[1]]);
    } else {
      target[off[1]] = source[off[2] + v * dim_stride];
    }
  }
};

// Inclusive prefix sum along D of a contiguous [outer, D, inner] block, one line per call.
template <class In, class Out, class Acc>
struct CumsumKernel {
  const In* x;
  Out* y;
  int64_t D, inner;
  TS_HD void operator()(int64_t i) const {
    const int64_t base = (i / inner) * D * inner + i % inner;
    Acc acc = 0;
    for (int64_t d = 0; d < D; ++d) {
      acc += static_cast<Acc>(x[base + d * inner]);
      y[base + d * inner] = static_cast<Out>(acc);
    }
  }
};

// nonzero as the GPU does it: flags, an inclusive prefix count, then each nonzero element writes
// its coordinates at row positions[i] - 1.
template <class T>
struct NonzeroFlagKernel {
  const T* x;
  int64_t* flags;
  TS_HD void operator()(int64_t i) const { flags[i] = x[i] != T(0) ? 1 : 0; }
};

template <class T>
struct NonzeroWriteKernel {
  const T* x;
  const int64_t* positions;
  int64_t* out;
  int64_t nd;
  int64_t shape[kMaxDims];
  TS_HD void operator()(int64_t i) const {
    if (!(x[i] != T(0))) return;
    const int64_t row = positions[i] - 1;
    int64_t rem = i;
    for (int64_t d = nd - 1; d >= 0; --d) {
      out[row * nd + d] = rem % shape[d];
      rem /= shape[d];
    }
  }
};

// Routed entry points. Shapes as in the functors above; tensors contiguous unless noted.
void index_select_kernel(const Tensor& out, const Tensor& x, const Tensor& index, int64_t outer, int64_t D,
                         int64_t inner);
void index_add_kernel(const Tensor& out, const Tensor& src, const Tensor& index, int64_t outer, int64_t D,
                      int64_t inner);
// gather: out (contiguous, index's shape) from x (any strides) along dim.
void gather_kernel(const Tensor& out, const Tensor& x, int64_t dim, const Tensor& index);
// scatter_add: out (contiguous) += src at index along dim.
void scatter_add_kernel(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src);
void cumsum_kernel(const Tensor& y, const Tensor& x, int64_t outer, int64_t D, int64_t inner);
// Coordinates [n, x.dim()] (int64) of the nonzero elements of x, in row-major order.
Tensor nonzero_kernel(const Tensor& x);

void index_select_kernel_cpu(const Tensor& out, const Tensor& x, const Tensor& index, int64_t outer, int64_t D, int64_t inner, int* error);
void index_add_kernel_cpu(const Tensor& out, const Tensor& src, const Tensor& index, int64_t outer, int64_t D, int64_t inner, int* error);
void gather_kernel_cpu(const Tensor& out, const Tensor& x, int64_t dim, const Tensor& index, int* error);
void scatter_add_kernel_cpu(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src, int* error);
void cumsum_kernel_cpu(const Tensor& y, const Tensor& x, int64_t outer, int64_t D, int64_t inner);
Tensor nonzero_kernel_cpu(const Tensor& x);
void index_select_kernel_cuda(const Tensor& out, const Tensor& x, const Tensor& index, int64_t outer, int64_t D, int64_t inner, int* error);
void index_add_kernel_cuda(const Tensor& out, const Tensor& src, const Tensor& index, int64_t outer, int64_t D, int64_t inner, int* error);
void gather_kernel_cuda(const Tensor& out, const Tensor& x, int64_t dim, const Tensor& index, int* error);
void scatter_add_kernel_cuda(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src, int* error);
void cumsum_kernel_cuda(const Tensor& y, const Tensor& x, int64_t outer, int64_t D, int64_t inner);
Tensor nonzero_kernel_cuda(const Tensor& x);

// The launch bodies shared by both files.
template <class Launch>
void index_select_impl(const Launch& L, const Tensor& out, const Tensor& x, const Tensor& index, int64_t outer,
                       int64_t D, int64_t inner, int* error) {
  const int64_t Lsz = index.numel();
  dispatch_all_with_half(x.dtype(), "index_select", [&]<class T>() {
    dispatch_index(index.dtype(), "index_select", [&]<class I>() {
      L(outer * Lsz * inner, IndexSelectKernel<T, I>{out.data<T>(), x.data<T>(), index.data<I>(), D, Lsz, inner, error},
        "index_select_kernel");
    });
  });
}

template <class Launch>
void index_add_impl(const Launch& L, const Tensor& out, const Tensor& src, const Tensor& index, int64_t outer,
                    int64_t D, int64_t inner, int* error) {
  const int64_t Lsz = index.numel();
  dispatch_numeric(out.dtype(), "index_add", [&]<class T>() {
    if constexpr (sizeof(T) < 4) {
      TS_ERROR("index_add: ", dtype_name(out.dtype()), " is not supported (no atomic add for 1-byte types)");
    } else {
      dispatch_index(index.dtype(), "index_add", [&]<class I>() {
        L(outer * Lsz * inner, IndexAddKernel<T, I>{out.data<T>(), src.data<T>(), index.data<I>(), D, Lsz, inner, error},
          "index_add_kernel");
      });
    }
  });
}

template <class Launch>
void gather_impl(const Launch& L, const Tensor& out, const Tensor& x, int64_t dim, const Tensor& index, int* error) {
  Shape x_strides = x.strides();
  x_strides[dim] = 0;
  auto offsets = make_strided_index<3>(index.shape(), {index.strides(), out.strides(), x_strides});
  dispatch_all_with_half(x.dtype(), "gather", [&]<class T>() {
    dispatch_index(index.dtype(), "gather", [&]<class I>() {
      L(index.numel(), GatherScatterKernel<T, I, false>{out.data<T>(), x.data<T>(), index.data<I>(), x.stride(dim), offsets,
                                         x.size(dim), error},
        "gather_kernel");
    });
  });
}

template <class Launch>
void scatter_add_impl(const Launch& L, const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src,
                      int* error) {
  Shape out_strides = out.strides();
  out_strides[dim] = 0;
  auto offsets = make_strided_index<3>(index.shape(), {index.strides(), src.strides(), out_strides});
  dispatch_numeric(out.dtype(), "scatter_add", [&]<class T>() {
    if constexpr (sizeof(T) < 4) {
      TS_ERROR("scatter_add: ", dtype_name(out.dtype()), " is not supported (no atomic add for 1-byte types)");
    } else {
      dispatch_index(index.dtype(), "scatter_add", [&]<class I>() {
        L(index.numel(),
          GatherScatterKernel<T, I, true>{out.data<T>(), src.data<T>(), index.data<I>(), out.stride(dim), offsets,
                                          out.size(dim), error},
          "scatter_add_kernel");
      });
    }
  });
}

template <bool kCuda, class Launch>
void cumsum_impl(const Launch& L, const Tensor& y, const Tensor& x, int64_t outer, int64_t D, int64_t inner) {
  dispatch_all(x.dtype(), "cumsum", [&]<class In>() {
    if constexpr (std::is_floating_point_v<In>) {
      using Acc = std::conditional_t<kCuda, In, double>;
      L(outer * inner, CumsumKernel<In, In, Acc>{x.data<In>(), y.data<In>(), D, inner}, "cumsum_kernel");
    } else {
      L(outer * inner, CumsumKernel<In, int64_t, int64_t>{x.data<In>(), y.data<int64_t>(), D, inner}, "cumsum_kernel");
    }
  });
}

}  // namespace tessera
