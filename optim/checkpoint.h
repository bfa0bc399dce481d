// Checkpoints as safetensors files, written atomically (a crash never leaves a half-written file).
//   save_module / load_module: a model's state_dict under PyTorch's key names, so a torchvision
//     state_dict saved with the Python safetensors package loads without a renaming table.
//   save_checkpoint / load_checkpoint: everything a run needs to continue bit-identically on the
//     CPU: "model.<key>" tensors, "optimizer.<key>" tensors, the step and the default generator's
//     Philox state (metadata), any extra metadata (the schedule is a function of the step), and a
//     GradScaler's state ("scaler.<key>") when one is given.
#pragma once

#include <map>
#include <string>

#include "layers/module.h"
#include "optim/grad_scaler.h"
#include "optim/optimizer.h"

namespace tessera {

void save_module(const Module& module, const std::string& path, const std::map<std::string, std::string>& metadata = {});
LoadResult load_module(Module& module, const std::string& path, bool strict = true);

struct TrainingState {
  int64_t step = 0;
  std::map<std::string, std::string> extra;  // free-form metadata saved alongside
};

void save_checkpoint(const std::string& path, const Module& model, const Optimizer& optimizer, const TrainingState& state,
                     const GradScaler* scaler = nullptr);
// Restores the model, the optimizer and the default generator (and the scaler, when given and
// the file has its state; a file without one leaves the scaler as it is); returns the step and
// metadata.
TrainingState load_checkpoint(const std::string& path, Module& model, Optimizer& optimizer, GradScaler* scaler = nullptr);

}  // namespace tessera
