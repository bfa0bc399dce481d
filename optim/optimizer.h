// Optimizers with torch.optim's update rules (SGD with momentum/dampening/nesterov/weight decay,
// Adam, AdamW), gradient clipping, and state that checkpoints save and restore.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "autograd/ops.h"

namespace tessera {

class Optimizer {
 public:
  explicit Optimizer(std::vector<Tensor> params, double lr);
  virtual ~Optimizer() = default;
  virtual void step() = 0;
  // Sets every gradient to undefined (PyTorch's set_to_none=True).
  void zero_grad();
  double lr() const { return lr_; }
  void set_lr(double lr);
  const std::vector<Tensor>& params() const { return params_; }
  // Per-parameter state as named tensors ("<index>.<name>") plus scalars, for checkpoints.
  virtual std::map<std::string, Tensor> state_tensors() const = 0;
  virtual void load_state_tensors(const std::map<std::string, Tensor>& state) = 0;
  int64_t steps() const { return steps_; }

 protected:
  std::vector<Tensor> params_;
  double lr_;
  int64_t steps_ = 0;
};

struct SGDOptions {
  double lr = 0.01;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
};

class SGD : public Optimizer {
 public:
  SGD(std::vector<Tensor> params, SGDOptions opts);
  void step() override;
  std::map<std::string, Tensor> state_tensors() const override;
  void load_state_tensors(const std::map<std::string, Tensor>& state) override;

 private:
  SGDOptions opts_;
  std::vector<Tensor> momentum_;  // undefined until the first step that sees a gradient
};

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  bool decoupled_weight_decay = false;  // AdamW
};

class Adam : public Optimizer {
 public:
  Adam(std::vector<Tensor> params, AdamOptions opts);
  void step() override;
  std::map<std::string, Tensor> state_tensors() const override;
  void load_state_tensors(const std::map<std::string, Tensor>& state) override;

 private:
  AdamOptions opts_;
  std::vector<Tensor> exp_avg_, exp_avg_sq_;
  std::vector<int64_t> param_steps_;
};

// AdamW: Adam with the weight decay applied to the parameters directly (Loshchilov & Hutter).
inline std::unique_ptr<Adam> make_adamw(std::vector<Tensor> params, AdamOptions opts) {
  opts.decoupled_weight_decay = true;
  return std::make_unique<Adam>(std::move(params), opts);
}

// Scales all gradients so that their joint norm is at most max_norm (torch.nn.utils.clip_grad_norm_:
// coefficient max_norm / (norm + 1e-6), clamped to 1). Returns the norm before clipping.
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);

}  // namespace tessera
