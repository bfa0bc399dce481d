// Module: named parameters, buffers and children with PyTorch's state_dict names
// ("layer1.0.conv1.weight"), train/eval, to(device), zero_grad, load_state_dict with PyTorch's
// missing/unexpected-key report.
//
// A module owns its tensors as members and registers pointers to them, so that to(device) can
// replace a member and load_state_dict can copy into it in place (keeping the handles an optimizer
// holds valid, as PyTorch's param.copy_ does).
#pragma once

#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/ops.h"

namespace tessera {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

struct LoadResult {
  std::vector<std::string> missing_keys;
  std::vector<std::string> unexpected_keys;
  bool ok() const { return missing_keys.empty() && unexpected_keys.empty(); }
};

// What load_state_dict() accepts: a map by name, state_dict()'s list (a name given twice is an
// Error), or a braced list of {name, tensor}.
struct StateDictInput {
  std::map<std::string, Tensor> entries;
  StateDictInput(std::map<std::string, Tensor> by_name) : entries(std::move(by_name)) {}  // NOLINT
  StateDictInput(const NamedTensors& list);                                                // NOLINT
  StateDictInput(std::initializer_list<std::pair<const std::string, Tensor>> list) : entries(list) {}
};

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // The one-input forward that Sequential chains; modules with other signatures define their own.
  virtual Tensor forward(const Tensor& x);
  Tensor operator()(const Tensor& x) { return forward(x); }

  NamedTensors named_parameters(bool recurse = true) const;
  NamedTensors named_buffers(bool recurse = true) const;
  std::vector<Tensor> parameters(bool recurse = true) const;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const { return children_; }
  // Parameters then buffers of each module, depth first in registration order (PyTorch's order).
  NamedTensors state_dict() const;
  std::map<std::string, Tensor> state_dict_map() const;
  // Copies values in place (converting dtype, moving devices). Shape mismatches are an Error
  // either way; missing or unexpected keys are an Error when strict, else reported.
  // Takes what state_dict() or state_dict_map() return, or {{"weight", w}, ...}.
  LoadResult load_state_dict(const StateDictInput& state, bool strict = true);

  virtual void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  // Moves every parameter and buffer (create optimizers after moving a model, as in PyTorch).
  void to(Device device);
  void to(DType dtype);  // floating parameters and buffers only
  void zero_grad();
  int64_t num_parameters(bool trainable_only = false) const;
  Device device() const;  // of the first parameter or buffer (cpu when there is none)

 protected:
  // Registers a member tensor; parameters are made leaves that require grad (unless frozen).
  Tensor& register_parameter(const std::string& name, Tensor* t, bool requires_grad = true);
  Tensor& register_buffer(const std::string& name, Tensor* t);
  // Keys (local names) that load_state_dict accepts and drops, as a PyTorch module's
  // _load_from_state_dict may: FrozenBatchNorm2d takes a BatchNorm2d's num_batches_tracked.
  virtual std::vector<std::string> ignored_state_keys() const { return {}; }
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    check_name(name);
    children_.emplace_back(name, m);
    return m;
  }

 private:
  void check_name(const std::string& name) const;
  void collect(const std::string& prefix, bool params, bool buffers, bool recurse, NamedTensors& out) const;
  void collect_slots(const std::string& prefix, std::vector<std::pair<std::string, Tensor*>>& out) const;
  void collect_ignored(const std::string& prefix, std::vector<std::string>& out) const;

  std::vector<std::pair<std::string, Tensor*>> params_, buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

}  // namespace tessera
