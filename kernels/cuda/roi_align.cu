// CUDA launches of the RoIAlign kernels (kernels/roi_align.h).
// Nothing here is CUDA-only: the CPU tests run these functors, the backward's atomics included,
// under CpuPerElementScope (kernels/roi_align.cpp), against the CPU's plane-wise traversal.
#include "core/cuda/launch.cuh"
#include "kernels/roi_align.h"

namespace tessera {

void roi_align_kernel_cuda(const Tensor& output, const Tensor& input, const Tensor& rois, const RoiAlignParams& p,
                           const Tensor& levels, int64_t level) {
  roi_align_impl(CudaLaunch{input.device().index}, output, input, rois, p, levels, level);
}
void roi_align_backward_kernel_cuda(const Tensor& grad_input, const Tensor& grad_output, const Tensor& rois,
                                    const RoiAlignParams& p, const Tensor& levels, int64_t level) {
  roi_align_backward_impl(CudaLaunch{grad_input.device().index}, grad_input, grad_output, rois, p, levels, level);
}
void roi_levels_kernel_cuda(const Tensor& levels, const Tensor& rois, double canonical_scale, double canonical_level,
                            int64_t k_min, int64_t k_max) {
  roi_levels_impl(CudaLaunch{rois.device().index}, levels, rois, canonical_scale, canonical_level, k_min, k_max);
}

}  // namespace tessera
