// Optimizer update rules, written as torch.optim writes them (single-tensor, foreach=False path).
#include "optim/optimizer.h"

#include <cmath>

#include "core/grad_mode.h"

namespace tessera {

Optimizer::Optimizer(std::vector<Tensor> params, double lr) : params_(std::move(params)), lr_(lr) {
  TS_CHECK(lr >= 0, "optimizer: learning rate must be non-negative, got ", lr);
  for (size_t i = 0; i < params_.size(); ++i)
    TS_CHECK(params_[i].defined() && params_[i].is_leaf() && is_floating(params_[i].dtype()),
             "optimizer: parameter ", i, " must be a defined floating leaf tensor");
}

void Optimizer::zero_grad() {
  for (Tensor& p : params_) p.set_grad(Tensor());
}

void Optimizer::set_lr(double lr) {
  TS_CHECK(lr >= 0, "optimizer: learning rate must be non-negative, got ", lr);
  lr_ = lr;
}

static std::string key(size_t i, const char* name) { return std::to_string(i) + "." + name; }

// ---- SGD

SGD::SGD(std::vector<Tensor> params, SGDOptions opts) : Optimizer(std::move(params), opts.lr), opts_(opts) {
  TS_CHECK(opts.momentum >= 0 && opts.weight_decay >= 0, "SGD: momentum and weight_decay must be non-negative");
  TS_CHECK(!opts.nesterov || (opts.momentum > 0 && opts.dampening == 0),
           "SGD: nesterov momentum requires a momentum and zero dampening");
  momentum_.resize(params_.size());
}

void SGD::step() {
  NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor& p = params_[i];
    Tensor g = p.grad();
    if (!g.defined()) continue;
    Tensor d_p = opts_.weight_decay != 0 ? add(g, mul(p, opts_.weight_decay)) : g;
    if (opts_.momentum != 0) {
      Tensor& buf = momentum_[i];
      if (!buf.defined()) {
        buf = d_p.clone();
      } else {
        mul_(buf, opts_.momentum);
        add_(buf, d_p, 1.0 - opts_.dampening);
      }
      d_p = opts_.nesterov ? add(d_p, mul(buf, opts_.momentum)) : buf;
    }
    add_(p, d_p, -lr_);
  }
  ++steps_;
}

std::map<std::string, Tensor> SGD::state_tensors() const {
  std::map<std::string, Tensor> s;
  for (size_t i = 0; i < momentum_.size(); ++i)
    if (momentum_[i].defined()) s[key(i, "momentum_buffer")] = momentum_[i];
  s["steps"] = scalar_tensor(static_cast<double>(steps_), kInt64);
  s["lr"] = scalar_tensor(lr_, kFloat64);
  return s;
}

void SGD::load_state_tensors(const std::map<std::string, Tensor>& state) {
  for (size_t i = 0; i < params_.size(); ++i) {
    auto it = state.find(key(i, "momentum_buffer"));
    momentum_[i] = it == state.end() ? Tensor() : it->second.to(params_[i].dtype()).to(params_[i].device()).clone();
    if (momentum_[i].defined())
      TS_CHECK(momentum_[i].shape() == params_[i].shape(), "SGD: momentum buffer ", i, " has shape ",
               shape_str(momentum_[i].shape()), ", the parameter ", shape_str(params_[i].shape()));
  }
  if (auto it = state.find("steps"); it != state.end()) steps_ = it->second.item<int64_t>();
  if (auto it = state.find("lr"); it != state.end()) lr_ = it->second.item<double>();
}

// ---- Adam / AdamW

Adam::Adam(std::vector<Tensor> params, AdamOptions opts) : Optimizer(std::move(params), opts.lr), opts_(opts) {
  TS_CHECK(opts.beta1 >= 0 && opts.beta1 < 1 && opts.beta2 >= 0 && opts.beta2 < 1, "Adam: betas must be in [0, 1)");
  TS_CHECK(opts.eps >= 0 && opts.weight_decay >= 0, "Adam: eps and weight_decay must be non-negative");
  exp_avg_.resize(params_.size());
  exp_avg_sq_.resize(params_.size());
  param_steps_.assign(params_.size(), 0);
}

void Adam::step() {
  NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor& p = params_[i];
    Tensor g = p.grad();
    if (!g.defined()) continue;
    if (!exp_avg_[i].defined()) {
      exp_avg_[i] = zeros_like(p);
      exp_avg_sq_[i] = zeros_like(p);
    }
    const int64_t step = ++param_steps_[i];
    if (opts_.weight_decay != 0) {
      if (opts_.decoupled_weight_decay) mul_(p, 1.0 - lr_ * opts_.weight_decay);
      else g = add(g, mul(p, opts_.weight_decay));
    }
    mul_(exp_avg_[i], opts_.beta1);
    add_(exp_avg_[i], g, 1.0 - opts_.beta1);
    mul_(exp_avg_sq_[i], opts_.beta2);
    add_(exp_avg_sq_[i], mul(g, g), 1.0 - opts_.beta2);
    const double bias_correction1 = 1.0 - std::pow(opts_.beta1, static_cast<double>(step));
    const double bias_correction2 = 1.0 - std::pow(opts_.beta2, static_cast<double>(step));
    const double step_size = lr_ / bias_correction1;
    Tensor denom = add(div(sqrt(exp_avg_sq_[i]), std::sqrt(bias_correction2)), opts_.eps);
    add_(p, div(exp_avg_[i], denom), -step_size);
  }
  ++steps_;
}

std::map<std::string, Tensor> Adam::state_tensors() const {
  std::map<std::string, Tensor> s;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!exp_avg_[i].defined()) continue;
    s[key(i, "exp_avg")] = exp_avg_[i];
    s[key(i, "exp_avg_sq")] = exp_avg_sq_[i];
    s[key(i, "step")] = scalar_tensor(static_cast<double>(param_steps_[i]), kInt64);
  }
  s["steps"] = scalar_tensor(static_cast<double>(steps_), kInt64);
  s["lr"] = scalar_tensor(lr_, kFloat64);
  return s;
}

void Adam::load_state_tensors(const std::map<std::string, Tensor>& state) {
  for (size_t i = 0; i < params_.size(); ++i) {
    auto a = state.find(key(i, "exp_avg")), b = state.find(key(i, "exp_avg_sq")), st = state.find(key(i, "step"));
    if (a == state.end() || b == state.end() || st == state.end()) {
      exp_avg_[i] = exp_avg_sq_[i] = Tensor();
      param_steps_[i] = 0;
      continue;
    }
    TS_CHECK(a->second.shape() == params_[i].shape() && b->second.shape() == params_[i].shape(), "Adam: state ", i,
             " does not match the parameter's shape ", shape_str(params_[i].shape()));
    exp_avg_[i] = a->second.to(params_[i].dtype()).to(params_[i].device()).clone();
    exp_avg_sq_[i] = b->second.to(params_[i].dtype()).to(params_[i].device()).clone();
    param_steps_[i] = st->second.item<int64_t>();
  }
  if (auto it = state.find("steps"); it != state.end()) steps_ = it->second.item<int64_t>();
  if (auto it = state.find("lr"); it != state.end()) lr_ = it->second.item<double>();
}

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  TS_CHECK(max_norm > 0, "clip_grad_norm: max_norm must be positive, got ", max_norm);
  NoGradGuard no_grad;
  double total_sq = 0;
  for (const Tensor& p : params) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    Tensor g64 = g.to(kFloat64);
    total_sq += sum(mul(g64, g64)).item<double>();
  }
  const double total = std::sqrt(total_sq);
  const double coef = std::min(1.0, max_norm / (total + 1e-6));
  for (const Tensor& p : params) {
    Tensor g = p.grad();
    if (g.defined()) mul_(g, coef);
  }
  return total;
}

}  // namespace tessera
