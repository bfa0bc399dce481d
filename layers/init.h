// Initialisers, written in place under no-grad (torch.nn.init), drawing from a Generator (the
// default one if null).
#pragma once

#include <string>

#include "core/random.h"
#include "core/tensor.h"

namespace tessera::init {

// fan_in = size(1) * receptive field, fan_out = size(0) * receptive field (PyTorch's rule for
// weights of 2 or more dimensions).
std::pair<int64_t, int64_t> fans(const Tensor& w);

void uniform_(Tensor& t, double low, double high, Generator* gen = nullptr);
void normal_(Tensor& t, double mean, double std, Generator* gen = nullptr);
void constant_(Tensor& t, double value);
// He et al.: std = gain / sqrt(fan), gain = sqrt(2) for ReLU; mode "fan_in" or "fan_out".
void kaiming_normal_(Tensor& t, const std::string& mode = "fan_in", Generator* gen = nullptr);
// kaiming_uniform_(a) as torch: bound = sqrt(6 / ((1 + a^2) fan_in)).
void kaiming_uniform_(Tensor& t, double a, Generator* gen = nullptr);
// The U-Net paper's initialisation: N(0, sqrt(2 / N)), N = the inputs of one neuron (fan_in).
void unet_normal_(Tensor& t, Generator* gen = nullptr);

}  // namespace tessera::init
