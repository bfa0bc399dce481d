// Tensor metadata, printing, element access and the non-differentiable in-place writes.
#include "core/tensor.h"

#include <cstring>
#include <iomanip>
#include <sstream>

#include "core/grad_mode.h"
#include "core/view.h"

namespace tessera {

namespace {
thread_local bool grad_mode_enabled = true;
}
bool GradMode::is_enabled() { return grad_mode_enabled; }
void GradMode::set_enabled(bool enabled) { grad_mode_enabled = enabled; }

TensorImpl::TensorImpl() = default;
TensorImpl::~TensorImpl() = default;

int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op) {
  const int64_t lo = ndim == 0 ? -1 : -ndim, hi = ndim == 0 ? 0 : ndim - 1;
  TS_CHECK(dim >= lo && dim <= hi, op, ": dimension ", dim, " is out of range for a tensor of ", ndim,
           " dimension(s) (expected [", lo, ", ", hi, "])");
  return dim < 0 ? dim + (ndim == 0 ? 1 : ndim) : dim;
}

int64_t shape_numel(const Shape& shape) {
  for (int64_t s : shape)
    if (s == 0) return 0;
  int64_t n = 1;
  for (int64_t s : shape) TS_CHECK(!__builtin_mul_overflow(n, s, &n), "shape ", shape_str(shape), " has more than 2^63 elements");
  return n;
}

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t acc = 1;
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    strides[d] = acc;
    // Also for empty tensors: a shape like (0, 2^40, 2^40) would overflow the strides.
    TS_CHECK(!__builtin_mul_overflow(acc, std::max<int64_t>(shape[d], 1), &acc), "shape ", shape_str(shape),
             " is too large: its strides overflow 64 bits");
  }
  return strides;
}

std::string shape_str(const Shape& shape) {
  std::ostringstream ss;
  ss << '[';
  for (size_t i = 0; i < shape.size(); ++i) ss << (i ? ", " : "") << shape[i];
  ss << ']';
  return ss.str();
}

int64_t Tensor::size(int64_t d) const { return shape()[wrap_dim(d, dim(), "size")]; }
int64_t Tensor::stride(int64_t d) const { return strides()[wrap_dim(d, dim(), "stride")]; }
int64_t Tensor::numel() const { return shape_numel(checked().shape); }

bool Tensor::is_contiguous() const {
  const TensorImpl& t = checked();
  int64_t expected = 1;
  for (int64_t d = static_cast<int64_t>(t.shape.size()) - 1; d >= 0; --d) {
    if (t.shape[d] == 1) continue;
    if (t.shape[d] == 0) return true;
    if (t.strides[d] != expected) return false;
    expected *= t.shape[d];
  }
  return true;
}

void* Tensor::data_ptr() const {
  const TensorImpl& t = checked();
  return static_cast<char*>(t.storage->data()) + t.offset * static_cast<int64_t>(element_size(t.dtype));
}

std::string Tensor::str() const {
  if (!defined()) return "undefined tensor";
  std::ostringstream ss;
  ss << shape_str(shape()) << ' ' << dtype_name(dtype()) << " on " << device();
  return ss.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) {
  if (!t.defined()) return os << "Tensor(undefined)";
  os << "Tensor(" << t.str();
  const int64_t n = t.numel();
  const int64_t shown = std::min<int64_t>(n, 32);
  std::vector<double> v = raw::reshape(t, {-1}).to_vector<double>();
  os << ", values [";
  for (int64_t i = 0; i < shown; ++i) os << (i ? ", " : "") << std::setprecision(6) << v[i];
  if (shown < n) os << ", ...";
  return os << "])";
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  Tensor host = raw::contiguous(raw::to(raw::to(*this, kCPU), dtype_of<T>()));
  const T* p = static_cast<const T*>(host.data_ptr());
  return std::vector<T>(p, p + host.numel());
}

template <class T>
T Tensor::item() const {
  TS_CHECK(numel() == 1, "item(): the tensor must hold exactly one element, it has shape ", shape_str(shape()));
  return to_vector<T>()[0];
}

#define TS_INSTANTIATE(T)                                  \
  template std::vector<T> Tensor::to_vector<T>() const; \
  template T Tensor::item<T>() const;
TS_INSTANTIATE(bool)
TS_INSTANTIATE(uint8_t)
TS_INSTANTIATE(int32_t)
TS_INSTANTIATE(int64_t)
TS_INSTANTIATE(float)
TS_INSTANTIATE(double)
TS_INSTANTIATE(bfloat16)
TS_INSTANTIATE(float16)
#undef TS_INSTANTIATE

// ---- autograd metadata

bool Tensor::requires_grad() const {
  const TensorImpl& t = checked();
  return t.autograd != nullptr && t.autograd->requires_grad;
}

Tensor& Tensor::requires_grad_(bool on) {
  TensorImpl& t = const_cast<TensorImpl&>(checked());
  if (!on && t.autograd == nullptr) return *this;
  TS_CHECK(!on || is_floating(t.dtype), "requires_grad_: only floating tensors can require ",
           "gradients, this one is ", dtype_name(t.dtype));
  TS_CHECK(t.autograd == nullptr || t.autograd->grad_fn == nullptr,
           "requires_grad_: can only be changed on leaf tensors; use detach() on a result first");
  if (t.autograd == nullptr) t.autograd = std::make_unique<AutogradMeta>();
  t.autograd->requires_grad = on;
  return *this;
}

Tensor Tensor::grad() const {
  const TensorImpl& t = checked();
  return t.autograd ? t.autograd->grad : Tensor();
}

void Tensor::set_grad(const Tensor& g) const {
  TensorImpl& t = const_cast<TensorImpl&>(checked());
  if (g.defined()) {
    TS_CHECK(g.shape() == t.shape && g.dtype() == t.dtype && g.device() == device(),
             "set_grad: the gradient must match the tensor (", str(), "), got ", g.str());
  }
  if (t.autograd == nullptr) t.autograd = std::make_unique<AutogradMeta>();
  t.autograd->grad = g;
}

std::shared_ptr<Node> Tensor::grad_fn() const {
  const TensorImpl& t = checked();
  return t.autograd ? t.autograd->grad_fn : nullptr;
}

Tensor Tensor::detach() const {
  return raw::make_view(*this, shape(), strides(), storage_offset());
}

// ---- in-place writes

void check_inplace_allowed(const Tensor& t, const char* op) {
  // Recording in-place ops in the graph is not supported: refusing is better than a gradient that
  // silently ignores the write.
  TS_CHECK(!(GradMode::is_enabled() && t.requires_grad()), op,
           ": a tensor that requires grad cannot be modified in place while grad mode is on ",
           "(wrap the update in NoGradGuard, or work on a detach()ed tensor)");
}

Tensor& Tensor::fill_(double value) {
  check_inplace_allowed(*this, "fill_");
  raw::fill_(*this, value);
  storage()->bump_version();
  return *this;
}

Tensor& Tensor::copy_(const Tensor& src) {
  check_inplace_allowed(*this, "copy_");
  TS_CHECK(src.defined(), "copy_: the source tensor is undefined");
  TS_CHECK(!(GradMode::is_enabled() && src.requires_grad()),
           "copy_: copying from a tensor that requires grad is not differentiable in tessera; "
           "detach() the source or use NoGradGuard");
  raw::copy_(*this, src);
  storage()->bump_version();
  return *this;
}

}  // namespace tessera
