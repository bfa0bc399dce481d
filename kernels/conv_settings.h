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

// CPU: whether bfloat16 convolutions (and transposed ones) and matrix products run in tessera's
// bfloat16 kernels (bfloat16 operands, float32 sums: kernels/cpu/gemm_bf16.h, Winograd included)
// instead of widening to float32 around the float32 op. Default: true where the CPU has AVX512-BF16
// (vdpbf16ps), false elsewhere (there the bfloat16 GEMM would widen its operands itself, which is
// no faster); TESSERA_CPU_BF16=0/1 sets it at start. float16 always widens on the CPU.
void set_cpu_bf16_kernels(bool on);
bool cpu_bf16_kernels();

// CPU: whether bfloat16 3x3 convolutions may use Winograd too (default true;
// TESSERA_CPU_WINOGRAD_BF16=0/1 sets it at start). Its transformed tiles are rounded to bfloat16,
// so each output carries a few bfloat16 roundings of values larger than itself: against float64 on
// the same bfloat16 values, ~2.5x the error of the direct convolution (which is the output's
// rounding alone); against the float32 network, the paper's U-Net under autocast errs 1.4x as much
// in relative L2 as with direct convolutions (tests/test_unet.cpp measures both), for ~1.5x its
// speed. false: im2col + GEMM, whose bfloat16 result is the float32 one on the same values rounded.
void set_cpu_winograd_bf16(bool on);
bool cpu_winograd_bf16();

// CUDA: whether float32 convolutions and matrix products may run on TF32 tensor cores (10-bit
// mantissa products, float32 sums). Default false, so float32 means float32 on the GPU as on the
// CPU; true is PyTorch's torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
// together (PyTorch's defaults: false for matmul, true for cuDNN). Half and bfloat16 operands
// always use the tensor cores, with float32 sums. No effect on the CPU.
void set_cuda_allow_tf32(bool on);
bool cuda_allow_tf32();

}  // namespace tessera
