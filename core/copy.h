// The copy kernel: dst[i] = cast<D>(src[i]) over any strides, broadcasting src. One body for both
// devices; copies between devices stage through contiguous buffers (core/copy.cpp).
#pragma once

#include <type_traits>

#include "core/strided.h"
#include "core/tensor.h"

namespace tessera {

// Conversion between element types as PyTorch does it: to bool means "!= 0"; to and from the
// halves through float (core/half.h).
template <class D, class S>
TS_HD D cast_value(S v) {
  if constexpr (std::is_same_v<D, bool>) {
    return v != S(0);
  } else {
    return static_cast<D>(v);
  }
}

template <class D, class S>
struct CopyContiguousKernel {
  D* dst;
  const S* src;
  TS_HD void operator()(int64_t i) const { dst[i] = cast_value<D>(src[i]); }
};

template <class D, class S>
struct CopyStridedKernel {
  D* dst;
  const S* src;
  StridedIndex<2> index;
  TS_HD void operator()(int64_t i) const {
    int64_t off[2];
    index.offsets(i, off);
    dst[off[0]] = cast_value<D>(src[off[1]]);
  }
  void range(int64_t b, int64_t e) const {
    const int64_t sd = inner_stride(index, 0), ss = inner_stride(index, 1);
    for_each_run(index, b, e, [&](const int64_t (&off)[2], int64_t n) {
      D* d = dst + off[0];
      const S* s = src + off[1];
      if (sd == 1 && ss == 1) {
        for (int64_t j = 0; j < n; ++j) d[j] = cast_value<D>(s[j]);
      } else if (sd == 1 && ss == 0) {
        const D v = cast_value<D>(*s);
        for (int64_t j = 0; j < n; ++j) d[j] = v;
      } else {
        for (int64_t j = 0; j < n; ++j) d[j * sd] = cast_value<D>(s[j * ss]);
      }
    });
  }
};

// dst and src on the same device, src broadcastable to dst, no overlap between them.
template <class Launch>
void copy_kernel(const Launch& launch, const Tensor& dst, const Tensor& src) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  dispatch_all_with_half(dst.dtype(), "copy", [&]<class D>() {
    dispatch_all_with_half(src.dtype(), "copy", [&]<class S>() {
      D* d = static_cast<D*>(dst.data_ptr());
      const S* s = static_cast<const S*>(src.data_ptr());
      if (dst.is_contiguous() && src.is_contiguous() && src.shape() == dst.shape()) {
        launch(n, CopyContiguousKernel<D, S>{d, s}, "copy_contiguous_kernel");
      } else {
        auto index = make_strided_index<2>(dst.shape(), {dst.strides(), broadcast_strides(src, dst.shape())});
        launch(n, CopyStridedKernel<D, S>{d, s, index}, "copy_strided_kernel");
      }
    });
  });
}

// The CUDA halves, defined in core/cuda/copy.cu (CUDA builds only).
void copy_kernel_cuda(const Tensor& dst, const Tensor& src);
// Contiguous byte copy between any two devices; blocks until the bytes have arrived on the host.
void copy_bytes_cuda(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes);

}  // namespace tessera
