// Module bookkeeping.
#include "layers/module.h"

#include <algorithm>
#include <set>
#include <sstream>

#include "core/view.h"

namespace tessera {

Tensor Module::forward(const Tensor&) { TS_ERROR("this module has no one-input forward()"); }

void Module::check_name(const std::string& name) const {
  TS_CHECK(!name.empty() && name.find('.') == std::string::npos, "module: invalid name '", name,
           "' (non-empty, no dots)");
  auto taken = [&](const auto& list) {
    return std::any_of(list.begin(), list.end(), [&](const auto& e) { return e.first == name; });
  };
  TS_CHECK(!taken(params_) && !taken(buffers_) && !taken(children_), "module: '", name, "' is registered twice");
}

Tensor& Module::register_parameter(const std::string& name, Tensor* t, bool requires_grad) {
  check_name(name);
  TS_CHECK(t->defined(), "register_parameter: '", name, "' is undefined");
  if (requires_grad) t->requires_grad_(true);
  params_.emplace_back(name, t);
  return *t;
}

Tensor& Module::register_buffer(const std::string& name, Tensor* t) {
  check_name(name);
  buffers_.emplace_back(name, t);
  return *t;
}

void Module::collect(const std::string& prefix, bool params, bool buffers, bool recurse, NamedTensors& out) const {
  if (params)
    for (const auto& [n, t] : params_) out.emplace_back(prefix + n, *t);
  if (buffers)
    for (const auto& [n, t] : buffers_)
      if (t->defined()) out.emplace_back(prefix + n, *t);
  if (recurse)
    for (const auto& [n, m] : children_) m->collect(prefix + n + ".", params, buffers, true, out);
}

void Module::collect_slots(const std::string& prefix, std::vector<std::pair<std::string, Tensor*>>& out) const {
  for (const auto& [n, t] : params_) out.emplace_back(prefix + n, t);
  for (const auto& [n, t] : buffers_)
    if (t->defined()) out.emplace_back(prefix + n, t);
  for (const auto& [n, m] : children_) m->collect_slots(prefix + n + ".", out);
}

void Module::collect_ignored(const std::string& prefix, std::vector<std::string>& out) const {
  for (const std::string& k : ignored_state_keys()) out.push_back(prefix + k);
  for (const auto& [n, m] : children_) m->collect_ignored(prefix + n + ".", out);
}

NamedTensors Module::named_parameters(bool recurse) const {
  NamedTensors out;
  collect("", true, false, recurse, out);
  return out;
}

NamedTensors Module::named_buffers(bool recurse) const {
  NamedTensors out;
  collect("", false, true, recurse, out);
  return out;
}

std::vector<Tensor> Module::parameters(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [n, t] : named_parameters(recurse)) out.push_back(t);
  return out;
}

NamedTensors Module::state_dict() const {
  // PyTorch: each module's own parameters, then its buffers, then its children.
  NamedTensors out;
  std::vector<std::pair<std::string, Tensor*>> slots;
  collect_slots("", slots);
  for (auto& [n, t] : slots) out.emplace_back(n, t->detach());
  return out;
}

std::map<std::string, Tensor> Module::state_dict_map() const {
  std::map<std::string, Tensor> m;
  for (auto& [n, t] : state_dict()) m.emplace(n, t);
  return m;
}

StateDictInput::StateDictInput(const NamedTensors& list) {
  for (const auto& [name, t] : list) TS_CHECK(entries.emplace(name, t).second, "load_state_dict: '", name, "' is given twice");
}

LoadResult Module::load_state_dict(const StateDictInput& input, bool strict) {
  const std::map<std::string, Tensor>& state = input.entries;
  std::vector<std::pair<std::string, Tensor*>> slots;
  collect_slots("", slots);
  LoadResult result;
  std::set<std::string> known;
  std::ostringstream mismatches;
  for (auto& [name, slot] : slots) {
    known.insert(name);
    auto it = state.find(name);
    if (it == state.end()) {
      result.missing_keys.push_back(name);
      continue;
    }
    if (it->second.shape() != slot->shape())
      mismatches << "\n  size mismatch for " << name << ": copying a param with shape " << shape_str(it->second.shape())
                 << ", the shape in the current model is " << shape_str(slot->shape());
  }
  std::vector<std::string> ignored;
  collect_ignored("", ignored);
  known.insert(ignored.begin(), ignored.end());
  for (const auto& [name, t] : state)
    if (!known.count(name)) result.unexpected_keys.push_back(name);
  std::ostringstream problems;
  problems << mismatches.str();
  if (strict) {
    if (!result.missing_keys.empty()) {
      problems << "\n  Missing key(s) in state_dict:";
      for (const auto& k : result.missing_keys) problems << " \"" << k << "\"";
    }
    if (!result.unexpected_keys.empty()) {
      problems << "\n  Unexpected key(s) in state_dict:";
      for (const auto& k : result.unexpected_keys) problems << " \"" << k << "\"";
    }
  }
  TS_CHECK(problems.str().empty(), "Error(s) in loading state_dict:", problems.str());
  NoGradGuard no_grad;
  for (auto& [name, slot] : slots) {
    auto it = state.find(name);
    if (it != state.end()) slot->copy_(it->second);
  }
  return result;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [n, m] : children_) m->train(on);
}

void Module::to(Device device) {
  std::vector<std::pair<std::string, Tensor*>> slots;
  collect_slots("", slots);
  for (auto& [n, t] : slots) {
    if (t->device() == device) continue;
    const bool grad = t->requires_grad();
    *t = raw::to(*t, device);
    if (grad) t->requires_grad_(true);
  }
}

void Module::to(DType dtype) {
  TS_CHECK(is_floating(dtype), "Module::to: only floating dtypes, got ", dtype_name(dtype));
  std::vector<std::pair<std::string, Tensor*>> slots;
  collect_slots("", slots);
  for (auto& [n, t] : slots) {
    if (!is_floating(t->dtype()) || t->dtype() == dtype) continue;
    const bool grad = t->requires_grad();
    *t = raw::to(*t, dtype);
    if (grad) t->requires_grad_(true);
  }
}

void Module::zero_grad() {
  for (auto& [n, t] : named_parameters()) t.set_grad(Tensor());
}

int64_t Module::num_parameters(bool trainable_only) const {
  int64_t n = 0;
  for (auto& [name, t] : named_parameters())
    if (!trainable_only || t.requires_grad()) n += t.numel();
  return n;
}

Device Module::device() const {
  std::vector<std::pair<std::string, Tensor*>> slots;
  collect_slots("", slots);
  return slots.empty() ? kCPU : slots.front().second->device();
}

}  // namespace tessera
