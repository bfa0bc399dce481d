// The one public convolution setting: how cuDNN's algorithm is chosen for a new shape (then
// cached). false (default) = cuDNN's heuristics (cudnnGet*Algorithm_v7, no trial runs); true =
// timed trials of every algorithm (cudnnFind*AlgorithmEx), as torch.backends.cudnn.benchmark.
// No effect on the CPU.
#pragma once

namespace tessera {

void set_cudnn_benchmark(bool on);
bool cudnn_benchmark();

}  // namespace tessera
