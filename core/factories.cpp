// Factories, the random generator, and the raw copy/fill entry points (device routing).
#include <cmath>
#include <cstring>

#include "core/copy.h"
#include "core/dispatch.h"
#include "core/factory_kernels.h"
#include "core/view.h"

namespace tessera {

Shape broadcast_strides(const Tensor& t, const Shape& shape) {
  const int64_t n = static_cast<int64_t>(shape.size()), offset = n - t.dim();
  TS_CHECK(offset >= 0, "cannot broadcast ", shape_str(t.shape()), " to ", shape_str(shape));
  Shape strides(n, 0);
  for (int64_t d = 0; d < t.dim(); ++d) {
    const int64_t have = t.size(d), want = shape[d + offset];
    TS_CHECK(have == want || have == 1, "cannot broadcast ", shape_str(t.shape()), " to ", shape_str(shape));
    strides[d + offset] = have == 1 ? 0 : t.stride(d);
  }
  return strides;
}

namespace {

void copy_same_device(const Tensor& dst, const Tensor& src) {
  if (dst.is_cuda()) {
    TS_CUDA_CALL(copy_kernel_cuda(dst, src));
  } else {
    copy_kernel(CpuLaunch{}, dst, src);
  }
}

bool may_overlap(const Tensor& a, const Tensor& b) {
  if (a.storage() != b.storage()) return false;
  auto extent = [](const Tensor& t) {
    int64_t lo = t.storage_offset(), hi = t.storage_offset();
    for (int64_t d = 0; d < t.dim(); ++d) {
      if (t.size(d) == 0) return std::pair<int64_t, int64_t>{0, -1};
      const int64_t span = (t.size(d) - 1) * t.stride(d);
      (span < 0 ? lo : hi) += span;
    }
    return std::pair<int64_t, int64_t>{lo, hi};
  };
  auto [alo, ahi] = extent(a);
  auto [blo, bhi] = extent(b);
  return alo <= bhi && blo <= ahi;
}

// src broadcast to `shape`, cast to `dtype`, as a new contiguous tensor on src's device.
Tensor materialize(const Tensor& src, const Shape& shape, DType dtype) {
  if (src.shape() == shape && src.dtype() == dtype && src.is_contiguous()) return src;
  Tensor out = raw::empty(shape, dtype, src.device());
  copy_same_device(out, src);
  return out;
}

}  // namespace

namespace raw {

void copy_(const Tensor& dst, const Tensor& src_in) {
  TS_CHECK(dst.defined() && src_in.defined(), "copy_: undefined tensor");
  (void)broadcast_strides(src_in, dst.shape());  // validates the broadcast with a clear message
  if (dst.numel() == 0) return;
  Tensor src = src_in;
  if (dst.device() == src.device()) {
    if (may_overlap(dst, src)) {
      if (dst.storage_offset() == src.storage_offset() && dst.shape() == src.shape() &&
          dst.strides() == src.strides() && dst.dtype() == src.dtype())
        return;  // copying a tensor onto itself
      src = clone(src_in);  // read everything before writing anything
    }
    copy_same_device(dst, src);
    return;
  }
  // Between devices: make the bytes contiguous in dst's dtype where they are, move them, then
  // scatter into dst's layout if it is not contiguous.
  Tensor staged = materialize(src, dst.shape(), dst.dtype());
  if (dst.is_contiguous()) {
    TS_CUDA_CALL(copy_bytes_cuda(dst.data_ptr(), dst.device(), staged.data_ptr(), staged.device(), dst.nbytes()));
    return;
  }
  Tensor landed = raw::empty(dst.shape(), dst.dtype(), dst.device());
  TS_CUDA_CALL(copy_bytes_cuda(landed.data_ptr(), landed.device(), staged.data_ptr(), staged.device(), dst.nbytes()));
  copy_same_device(dst, landed);
}

void fill_(const Tensor& dst, double value) {
  if (dst.is_cuda()) {
    TS_CUDA_CALL(fill_kernel_cuda(dst, value));
  } else {
    fill_kernel(CpuLaunch{}, dst, value);
  }
}

}  // namespace raw

// ---- factories

static Tensor finish(Tensor t, const TensorOptions& opts) {
  if (opts.requires_grad) t.requires_grad_(true);
  return t;
}

Tensor empty(const Shape& shape, TensorOptions opts) {
  return finish(raw::empty(shape, opts.dtype, opts.device), opts);
}

Tensor full(const Shape& shape, double value, TensorOptions opts) {
  Tensor t = raw::empty(shape, opts.dtype, opts.device);
  raw::fill_(t, value);
  return finish(t, opts);
}

Tensor zeros(const Shape& shape, TensorOptions opts) { return full(shape, 0.0, opts); }
Tensor ones(const Shape& shape, TensorOptions opts) { return full(shape, 1.0, opts); }
Tensor empty_like(const Tensor& t) { return raw::empty(t.shape(), t.dtype(), t.device()); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), options(t.dtype(), t.device())); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), options(t.dtype(), t.device())); }
Tensor full_like(const Tensor& t, double value) { return full(t.shape(), value, options(t.dtype(), t.device())); }
Tensor scalar_tensor(double value, TensorOptions opts) { return full({}, value, opts); }

Tensor arange(double start, double end, double step, TensorOptions opts) {
  TS_CHECK(step != 0, "arange: step must be nonzero");
  TS_CHECK(std::isfinite(start) && std::isfinite(end) && std::isfinite(step), "arange: start, end and step must be finite");
  TS_CHECK((step > 0 && end >= start) || (step < 0 && end <= start), "arange: the range [", start, ", ", end,
           ") and step ", step, " have inconsistent signs");
  const int64_t n = static_cast<int64_t>(std::ceil((end - start) / step));
  Tensor t = raw::empty({n}, opts.dtype, opts.device);
  if (n > 0) {
    if (t.is_cuda()) {
      TS_CUDA_CALL(arange_kernel_cuda(t, start, step));
    } else {
      arange_kernel(CpuLaunch{}, t, start, step);
    }
  }
  return finish(t, opts);
}

Tensor arange(int64_t end, TensorOptions opts) { return arange(0.0, static_cast<double>(end), 1.0, opts); }

Tensor linspace(double start, double end, int64_t steps, TensorOptions opts) {
  TS_CHECK(steps >= 0, "linspace: steps must be non-negative, got ", steps);
  Tensor t = raw::empty({steps}, opts.dtype, opts.device);
  if (steps > 0) {
    if (t.is_cuda()) {
      TS_CUDA_CALL(linspace_kernel_cuda(t, start, end));
    } else {
      linspace_kernel(CpuLaunch{}, t, start, end);
    }
  }
  return finish(t, opts);
}

template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape_in, Device device) {
  Shape shape = shape_in.empty() && values.size() != 1 ? Shape{static_cast<int64_t>(values.size())} : shape_in;
  TS_CHECK(shape_numel(shape) == static_cast<int64_t>(values.size()), "from_vector: ", values.size(),
           " values do not fill shape ", shape_str(shape));
  Tensor host = raw::empty(shape, dtype_of<T>(), kCPU);
  if constexpr (std::is_same_v<T, bool>) {
    bool* p = static_cast<bool*>(host.data_ptr());
    for (size_t i = 0; i < values.size(); ++i) p[i] = values[i];
  } else {
    if (!values.empty()) std::memcpy(host.data_ptr(), values.data(), values.size() * sizeof(T));
  }
  return raw::to(host, device);
}
template Tensor from_vector<bool>(const std::vector<bool>&, const Shape&, Device);
template Tensor from_vector<uint8_t>(const std::vector<uint8_t>&, const Shape&, Device);
template Tensor from_vector<int32_t>(const std::vector<int32_t>&, const Shape&, Device);
template Tensor from_vector<int64_t>(const std::vector<int64_t>&, const Shape&, Device);
template Tensor from_vector<float>(const std::vector<float>&, const Shape&, Device);
template Tensor from_vector<double>(const std::vector<double>&, const Shape&, Device);
template Tensor from_vector<bfloat16>(const std::vector<bfloat16>&, const Shape&, Device);
template Tensor from_vector<float16>(const std::vector<float16>&, const Shape&, Device);

// ---- random

void Generator::manual_seed(uint64_t seed) { set_state(seed, 0); }
uint64_t Generator::seed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return seed_;
}
uint64_t Generator::offset() const {
  std::lock_guard<std::mutex> lock(mu_);
  return offset_;
}
void Generator::set_state(uint64_t seed, uint64_t offset) {
  std::lock_guard<std::mutex> lock(mu_);
  seed_ = seed;
  offset_ = offset;
}
uint64_t Generator::reserve(uint64_t blocks) {
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t first = offset_;
  offset_ += blocks;
  return first;
}

Generator& default_generator() {
  static Generator g;
  return g;
}
void manual_seed(uint64_t seed) { default_generator().manual_seed(seed); }

static Tensor draw(const Shape& shape, TensorOptions opts, Generator* gen, RandomDist dist, double low, double high) {
  if (is_half(opts.dtype)) {  // drawn as float32 (the same stream), rounded once
    TensorOptions wide = opts;
    wide.dtype = DType::Float32;
    wide.requires_grad = false;
    return finish(raw::to(draw(shape, wide, gen, dist, low, high), opts.dtype), opts);
  }
  Generator& g = gen ? *gen : default_generator();
  Tensor t = raw::empty(shape, opts.dtype, opts.device);
  const int64_t n = t.numel();
  const int per = values_per_block(dist, opts.dtype);
  const uint64_t blocks = static_cast<uint64_t>((n + per - 1) / per);
  uint64_t seed = g.seed();
  const uint64_t offset = g.reserve(blocks);
  if (n > 0) {
    if (t.is_cuda()) {
      TS_CUDA_CALL(random_kernel_cuda(t, dist, low, high, seed, offset));
    } else {
      random_kernel(CpuLaunch{}, t, dist, low, high, seed, offset);
    }
  }
  return finish(t, opts);
}

Tensor uniform(const Shape& shape, double low, double high, TensorOptions opts, Generator* gen) {
  TS_CHECK(is_floating(opts.dtype), "uniform/rand: dtype must be floating, got ", dtype_name(opts.dtype));
  TS_CHECK(low <= high, "uniform: low (", low, ") must not exceed high (", high, ")");
  return draw(shape, opts, gen, RandomDist::Uniform, low, high);
}
Tensor rand(const Shape& shape, TensorOptions opts, Generator* gen) { return uniform(shape, 0.0, 1.0, opts, gen); }
Tensor randn(const Shape& shape, TensorOptions opts, Generator* gen) {
  TS_CHECK(is_floating(opts.dtype), "randn: dtype must be floating, got ", dtype_name(opts.dtype));
  return draw(shape, opts, gen, RandomDist::Normal, 0.0, 1.0);
}
Tensor randint(int64_t low, int64_t high, const Shape& shape, TensorOptions opts, Generator* gen) {
  TS_CHECK(high > low, "randint: high (", high, ") must be greater than low (", low, ")");
  TS_CHECK(opts.dtype != DType::Bool, "randint: bool is not an integer dtype");
  return draw(shape, opts, gen, RandomDist::Integer, static_cast<double>(low), static_cast<double>(high));
}

}  // namespace tessera
