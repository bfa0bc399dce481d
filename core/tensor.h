// Tensor: a cheap handle to (storage, shape, strides in elements, offset, dtype, autograd metadata).
//
// Metadata accessors and non-differentiable helpers are defined in core/. The methods that can
// record autograd (views, contiguous, clone, to, backward) are declared here but defined in
// autograd/tensor_methods.cpp, so that a method call never silently drops a gradient. Code below
// the autograd floor uses the raw:: functions of core/view.h instead.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"

namespace tessera {

using Shape = std::vector<int64_t>;

class Node;  // autograd/node.h
struct AutogradMeta;
class Tensor;

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Shape strides;  // in elements
  int64_t offset = 0;  // in elements
  DType dtype = DType::Float32;
  std::unique_ptr<AutogradMeta> autograd;  // null until autograd needs it

  TensorImpl();
  ~TensorImpl();
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool is_same(const Tensor& o) const { return impl_ == o.impl_; }

  // ---- metadata
  int64_t dim() const { return static_cast<int64_t>(checked().shape.size()); }
  const Shape& shape() const { return checked().shape; }
  const Shape& sizes() const { return checked().shape; }
  const Shape& strides() const { return checked().strides; }
  int64_t size(int64_t d) const;    // negative d counts from the end
  int64_t stride(int64_t d) const;
  int64_t numel() const;
  DType dtype() const { return checked().dtype; }
  Device device() const { return checked().storage->device(); }
  bool is_cuda() const { return device().is_cuda(); }
  bool is_cpu() const { return device().is_cpu(); }
  bool is_floating_point() const { return is_floating(dtype()); }
  bool is_contiguous() const;
  int64_t storage_offset() const { return checked().offset; }
  const std::shared_ptr<Storage>& storage() const { return checked().storage; }
  size_t nbytes() const { return static_cast<size_t>(numel()) * element_size(dtype()); }
  std::string str() const;  // "[2, 3] float32 on cpu"

  // Address of the first element (storage + offset).
  void* data_ptr() const;
  // Typed address; an Error if T does not match dtype().
  template <class T> T* data() const {
    TS_CHECK(dtype_of<T>() == dtype(), "data<", dtype_name(dtype_of<T>()), ">() on a ",
             dtype_name(dtype()), " tensor");
    return static_cast<T*>(data_ptr());
  }

  // ---- element access for tests and small results (copies to the host)
  template <class T> T item() const;
  template <class T> std::vector<T> to_vector() const;

  // ---- autograd metadata (core: plain fields; autograd/ gives them meaning)
  bool requires_grad() const;
  // Marks a leaf as needing a gradient; an Error on a non-leaf or a non-floating tensor.
  Tensor& requires_grad_(bool on = true);
  Tensor grad() const;  // undefined when none has been accumulated
  void set_grad(const Tensor& g) const;
  std::shared_ptr<Node> grad_fn() const;
  bool is_leaf() const { return grad_fn() == nullptr; }
  // A view of the same data that is not part of any graph.
  Tensor detach() const;

  // ---- in-place, non-differentiable writes (an Error on a leaf that requires grad while grad
  // mode is on, as in PyTorch)
  Tensor& fill_(double value);
  Tensor& zero_() { return fill_(0.0); }
  Tensor& copy_(const Tensor& src);  // broadcasts src, casts dtype, crosses devices

  // ---- differentiable views and conversions (defined in autograd/tensor_methods.cpp)
  Tensor view(const Shape& shape) const;     // an Error when no view is possible
  Tensor reshape(const Shape& shape) const;  // a view when possible, else a copy; one -1 allowed
  Tensor permute(const Shape& dims) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor t() const { return transpose(0, 1); }
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor select(int64_t dim, int64_t index) const;
  Tensor expand(const Shape& shape) const;  // -1 keeps a size
  Tensor squeeze() const;
  Tensor squeeze(int64_t dim) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
  Tensor contiguous() const;
  Tensor clone() const;
  Tensor to(Device device) const;
  Tensor to(DType dtype) const;
  Tensor cpu() const { return to(kCPU); }
  Tensor cuda(int index = 0) const { return to(Device(DeviceType::CUDA, index)); }

  // Reverse-mode differentiation from this tensor (defined in autograd/engine.cpp).
  void backward(const Tensor& gradient = Tensor(), bool retain_graph = false) const;

 private:
  const TensorImpl& checked() const {
    TS_CHECK(impl_ != nullptr, "operation on an undefined tensor");
    return *impl_;
  }
  std::shared_ptr<TensorImpl> impl_;
};

struct AutogradMeta {
  bool requires_grad = false;
  Tensor grad;
  std::shared_ptr<Node> grad_fn;  // null for leaves
  uint32_t output_nr = 0;         // which output of grad_fn this tensor is
  std::weak_ptr<Node> grad_accumulator;  // the AccumulateGrad node of a leaf, shared by its uses
  // Called with the leaf after a backward has accumulated its gradient for the last time in that
  // pass (autograd/node.h: register_post_accumulate_grad_hook).
  std::vector<std::function<void(const Tensor&)>> post_accumulate_hooks;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// Dimension helpers shared by every op.
int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op);
int64_t shape_numel(const Shape& shape);
Shape contiguous_strides(const Shape& shape);
std::string shape_str(const Shape& shape);

// ---- factories
struct TensorOptions {
  DType dtype = DType::Float32;
  Device device = kCPU;
  bool requires_grad = false;

  TensorOptions() = default;
  TensorOptions(DType d) : dtype(d) {}    // NOLINT: zeros({2}, kInt64) reads naturally
  TensorOptions(Device d) : device(d) {}  // NOLINT
  TensorOptions& with_dtype(DType d) { dtype = d; return *this; }
  TensorOptions& with_device(Device d) { device = d; return *this; }
  TensorOptions& with_requires_grad(bool r = true) { requires_grad = r; return *this; }
};
inline TensorOptions options(DType d, Device dev = kCPU) {
  TensorOptions o;
  o.dtype = d;
  o.device = dev;
  return o;
}

Tensor empty(const Shape& shape, TensorOptions opts = {});
Tensor zeros(const Shape& shape, TensorOptions opts = {});
Tensor ones(const Shape& shape, TensorOptions opts = {});
Tensor full(const Shape& shape, double value, TensorOptions opts = {});
Tensor empty_like(const Tensor& t);
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor full_like(const Tensor& t, double value);
// [start, end) in steps of step; dtype defaults to int64 (pass kFloat32 for floats).
Tensor arange(double start, double end, double step = 1.0, TensorOptions opts = DType::Int64);
Tensor arange(int64_t end, TensorOptions opts = DType::Int64);
Tensor linspace(double start, double end, int64_t steps, TensorOptions opts = {});
// A tensor holding `values` (dtype from T), of shape `shape` (default: 1-D of values.size()).
template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape = {}, Device device = kCPU);
Tensor scalar_tensor(double value, TensorOptions opts = {});

}  // namespace tessera
