// Checkpoints.
#include "optim/checkpoint.h"

#include "core/random.h"
#include "core/safetensors.h"

namespace tessera {

void save_module(const Module& module, const std::string& path, const std::map<std::string, std::string>& metadata) {
  save_safetensors(path, module.state_dict_map(), metadata);
}

LoadResult load_module(Module& module, const std::string& path, bool strict) {
  return module.load_state_dict(load_safetensors(path).tensors, strict);
}

void save_checkpoint(const std::string& path, const Module& model, const Optimizer& optimizer, const TrainingState& state,
                     const GradScaler* scaler) {
  std::map<std::string, Tensor> tensors;
  for (const auto& [k, t] : model.state_dict()) tensors["model." + k] = t;
  for (const auto& [k, t] : optimizer.state_tensors()) tensors["optimizer." + k] = t;
  if (scaler && scaler->enabled())
    for (const auto& [k, t] : scaler->state_tensors()) tensors["scaler." + k] = t;
  std::map<std::string, std::string> meta = state.extra;
  meta["tessera.step"] = std::to_string(state.step);
  meta["tessera.rng_seed"] = std::to_string(default_generator().seed());
  meta["tessera.rng_offset"] = std::to_string(default_generator().offset());
  save_safetensors(path, tensors, meta);
}

TrainingState load_checkpoint(const std::string& path, Module& model, Optimizer& optimizer, GradScaler* scaler) {
  SafetensorsFile f = load_safetensors(path);
  std::map<std::string, Tensor> model_state, optim_state, scaler_state;
  for (const auto& [k, t] : f.tensors) {
    if (k.rfind("model.", 0) == 0) model_state[k.substr(6)] = t;
    else if (k.rfind("optimizer.", 0) == 0) optim_state[k.substr(10)] = t;
    else if (k.rfind("scaler.", 0) == 0) scaler_state[k.substr(7)] = t;
    else TS_ERROR(path, ": unexpected entry '", k, "' in a training checkpoint");
  }
  auto number = [&](const char* key) -> uint64_t {
    auto it = f.metadata.find(key);
    TS_CHECK(it != f.metadata.end(), path, ": not a tessera training checkpoint (no '", key, "' in its metadata)");
    try {
      return std::stoull(it->second);
    } catch (const std::exception&) {
      TS_ERROR(path, ": metadata '", key, "' is not a number: '", it->second, "'");
    }
  };
  TrainingState state;
  state.step = static_cast<int64_t>(number("tessera.step"));
  const uint64_t seed = number("tessera.rng_seed"), offset = number("tessera.rng_offset");
  model.load_state_dict(model_state, true);
  optimizer.load_state_tensors(optim_state);
  if (scaler && !scaler_state.empty()) scaler->load_state_tensors(scaler_state);
  default_generator().set_state(seed, offset);
  for (const auto& [k, v] : f.metadata)
    if (k.rfind("tessera.", 0) != 0) state.extra[k] = v;
  return state;
}

}  // namespace tessera
