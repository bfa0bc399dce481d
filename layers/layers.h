// The standard layers, with PyTorch's parameter names, shapes and default initialisation.
#pragma once

#include <optional>

#include "layers/init.h"
#include "layers/module.h"

namespace tessera {

// weight [out, in/groups, kh, kw], bias [out]; PyTorch's default init (kaiming_uniform_(a=sqrt(5))
// for the weight, U(+-1/sqrt(fan_in)) for the bias).
class Conv2d : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, Int2 kernel_size, Int2 stride = 1, Int2 padding = 0,
         Int2 dilation = 1, int64_t groups = 1, bool bias = true, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;
  // relu(forward(x)) in one pass (conv2d_relu).
  Tensor forward_relu(const Tensor& x);
  Tensor weight, bias;
  Int2 stride, padding, dilation;
  int64_t groups;
};

// weight [in, out/groups, kh, kw], bias [out].
class ConvTranspose2d : public Module {
 public:
  ConvTranspose2d(int64_t in_channels, int64_t out_channels, Int2 kernel_size, Int2 stride = 1, Int2 padding = 0,
                  Int2 output_padding = 0, int64_t groups = 1, bool bias = true, Int2 dilation = 1, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;
  Tensor weight, bias;
  Int2 stride, padding, output_padding, dilation;
  int64_t groups;
};

// weight [out, in], bias [out]; y = x W^T + b over the last dim.
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;
  Tensor weight, bias;
};

// weight (ones), bias (zeros), running_mean (zeros), running_var (ones), num_batches_tracked.
class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(int64_t num_features, double eps = 1e-5, double momentum = 0.1, bool affine = true,
                       bool track_running_stats = true);
  Tensor forward(const Tensor& x) override;
  Tensor weight, bias, running_mean, running_var, num_batches_tracked;
  double eps, momentum;
};

// torch.nn.GroupNorm: weight (ones) and bias (zeros) [num_channels]; no running statistics.
class GroupNorm : public Module {
 public:
  GroupNorm(int64_t num_groups, int64_t num_channels, double eps = 1e-5, bool affine = true);
  Tensor forward(const Tensor& x) override;
  Tensor weight, bias;
  int64_t num_groups;
  double eps;
};

// torchvision.ops.FrozenBatchNorm2d: four buffers, no parameters, no num_batches_tracked.
class FrozenBatchNorm2d : public Module {
 public:
  explicit FrozenBatchNorm2d(int64_t num_features, double eps = 1e-5);
  Tensor forward(const Tensor& x) override;
  // A BatchNorm2d checkpoint loads as it is (torchvision drops the counter the same way).
  std::vector<std::string> ignored_state_keys() const override { return {"num_batches_tracked"}; }
  Tensor weight, bias, running_mean, running_var;
  double eps;
};

class ReLU : public Module {
 public:
  Tensor forward(const Tensor& x) override { return relu(x); }
};

class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(Int2 kernel_size, OptionalInt2 stride = std::nullopt, Int2 padding = 0, Int2 dilation = 1,
                     bool ceil_mode = false)
      : kernel_size(kernel_size), stride(stride), padding(padding), dilation(dilation), ceil_mode(ceil_mode) {}
  Tensor forward(const Tensor& x) override { return max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode); }
  Int2 kernel_size;
  OptionalInt2 stride;
  Int2 padding, dilation;
  bool ceil_mode;
};

// Active in training mode only; draws from `gen` (the default generator if null).
class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5, Generator* gen = nullptr) : p(p), gen(gen) {
    TS_CHECK(p >= 0 && p <= 1, "Dropout: p must be in [0, 1], got ", p);
  }
  Tensor forward(const Tensor& x) override { return dropout(x, p, is_training(), gen); }
  double p;
  Generator* gen;
};

// Children named "0", "1", ...; forward chains them.
class Sequential : public Module {
 public:
  Sequential() = default;
  template <class M>
  std::shared_ptr<M> push_back(std::shared_ptr<M> m) {
    modules_.push_back(m);
    return register_module(std::to_string(modules_.size() - 1), m);
  }
  Tensor forward(const Tensor& x) override;
  size_t size() const { return modules_.size(); }
  std::shared_ptr<Module> operator[](size_t i) const { return modules_.at(i); }

 private:
  std::vector<std::shared_ptr<Module>> modules_;
};

}  // namespace tessera
