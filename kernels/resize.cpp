// Resampling: the per-axis tables, routing, and CPU launches.
#include <vector>

#include "core/dispatch.h"
#include "core/view.h"
#include "kernels/resize.h"

namespace tessera {

namespace {

// One axis: forward indices and weights for every output index, then the reader lists (CSR).
template <class T>
void build_axis(const Axis<T>& a, ResizeMode mode, std::vector<int64_t>& ints, std::vector<T>& reals, int64_t& nnz) {
  std::vector<int64_t> i0(a.out), i1(a.out);
  std::vector<T> l0(a.out), l1(a.out);
  for (int64_t d = 0; d < a.out; ++d) {
    if (mode == ResizeMode::Bilinear) {
      a.linear(d, i0[d], i1[d], l0[d], l1[d]);
    } else {
      i0[d] = i1[d] = a.nearest(d);
      l0[d] = T(1);
      l1[d] = T(0);
    }
  }
  std::vector<std::vector<std::pair<int64_t, T>>> readers(a.in);
  for (int64_t d = 0; d < a.out; ++d) {
    if (i0[d] == i1[d]) {  // both taps on one pixel: one entry with the summed weight
      readers[i0[d]].push_back({d, l0[d] + l1[d]});
    } else {
      readers[i0[d]].push_back({d, l0[d]});
      readers[i1[d]].push_back({d, l1[d]});
    }
  }
  std::vector<int64_t> start(a.in + 1, 0), reader;
  std::vector<T> weight;
  for (int64_t i = 0; i < a.in; ++i) {
    for (auto [d, w] : readers[i]) {
      reader.push_back(d);
      weight.push_back(w);
    }
    start[i + 1] = static_cast<int64_t>(reader.size());
  }
  nnz = static_cast<int64_t>(reader.size());
  for (auto* v : {&i0, &i1, &start, &reader}) ints.insert(ints.end(), v->begin(), v->end());
  for (auto* v : {&l0, &l1, &weight}) reals.insert(reals.end(), v->begin(), v->end());
}

}  // namespace

ResizeTables make_resize_tables(const ResizeParams& p, DType dtype, Device device) {
  ResizeTables t;
  dispatch_floating(dtype, "interpolate", [&]<class T>() {
    std::vector<int64_t> ints;
    std::vector<T> reals;
    build_axis(make_axis<T>(p.H, p.Ho, p.scale_h, p.align_corners, p.mode), p.mode, ints, reals, t.h_nnz);
    build_axis(make_axis<T>(p.W, p.Wo, p.scale_w, p.align_corners, p.mode), p.mode, ints, reals, t.w_nnz);
    t.ints = raw::to(from_vector<int64_t>(ints, {static_cast<int64_t>(ints.size())}), device);
    t.reals = raw::to(from_vector<T>(reals), device);
  });
  return t;
}

void resize_kernel_cpu(const Tensor& y, const Tensor& x, const ResizeParams& p, const ResizeTables& t) {
  resize_impl(CpuLaunch{}, y, x, p, t);
}
void resize_backward_kernel_cpu(const Tensor& gx, const Tensor& gy, const ResizeParams& p, const ResizeTables& t) {
  resize_backward_impl(CpuLaunch{}, gx, gy, p, t);
}
void resize_kernel(const Tensor& y, const Tensor& x, const ResizeParams& p) {
  if (y.numel() == 0) return;
  const ResizeTables t = make_resize_tables(p, x.dtype(), x.device());
  if (x.is_cuda()) TS_CUDA_CALL(resize_kernel_cuda(y, x, p, t));
  else resize_kernel_cpu(y, x, p, t);
}
void resize_backward_kernel(const Tensor& gx, const Tensor& gy, const ResizeParams& p) {
  if (gx.numel() == 0) return;
  const ResizeTables t = make_resize_tables(p, gy.dtype(), gy.device());
  if (gx.is_cuda()) TS_CUDA_CALL(resize_backward_kernel_cuda(gx, gy, p, t));
  else resize_backward_kernel_cpu(gx, gy, p, t);
}

}  // namespace tessera
