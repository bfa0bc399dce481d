// Convolution settings. cudnn_benchmark: how cuDNN's algorithm is chosen for a new shape (then
// cached). false (default) = cuDNN's heuristics (cudnnGet*Algorithm_v7, no trial runs); true =
// timed trials of every algorithm (cudnnFind*AlgorithmEx), as torch.backends.cudnn.benchmark.
// No effect on the CPU.
#pragma once

namespace tessera {

void set_cudnn_benchmark(bool on);
bool cudnn_benchmark();

// CPU: whether 3x3 stride-1 convolutions may use Winograd F(2x2, 3x3) (default true; false = im2col
// + GEMM for every convolution, to compare the two; TESSERA_CPU_WINOGRAD=0 sets false at start). No effect on CUDA (cuDNN picks its own).
void set_cpu_winograd(bool on);
bool cpu_winograd();

}  // namespace tessera
