// RoIAlign: routing, and the level kernel's CPU launch (the CPU traversals are in kernels/cpu/).
#include "core/dispatch.h"
#include "kernels/roi_align.h"

namespace tessera {

void roi_levels_kernel_cpu(const Tensor& levels, const Tensor& rois, double canonical_scale, double canonical_level,
                           int64_t k_min, int64_t k_max) {
  roi_levels_impl(CpuLaunch{}, levels, rois, canonical_scale, canonical_level, k_min, k_max);
}

void roi_align_kernel(const Tensor& output, const Tensor& input, const Tensor& rois, const RoiAlignParams& p,
                      const Tensor& levels, int64_t level) {
  if (output.numel() == 0) return;
  if (input.is_cuda()) TS_CUDA_CALL(roi_align_kernel_cuda(output, input, rois, p, levels, level));
  else if (cpu_per_element()) roi_align_impl(CpuLaunch{}, output, input, rois, p, levels, level);  // the GPU's functor
  else roi_align_kernel_cpu(output, input, rois, p, levels, level);
}
void roi_align_backward_kernel(const Tensor& grad_input, const Tensor& grad_output, const Tensor& rois,
                               const RoiAlignParams& p, const Tensor& levels, int64_t level) {
  if (grad_output.numel() == 0) return;
  if (grad_input.is_cuda()) TS_CUDA_CALL(roi_align_backward_kernel_cuda(grad_input, grad_output, rois, p, levels, level));
  else if (cpu_per_element()) roi_align_backward_impl(CpuLaunch{}, grad_input, grad_output, rois, p, levels, level);  // atomics
  else roi_align_backward_kernel_cpu(grad_input, grad_output, rois, p, levels, level);
}
void roi_levels_kernel(const Tensor& levels, const Tensor& rois, double canonical_scale, double canonical_level,
                       int64_t k_min, int64_t k_max) {
  if (levels.numel() == 0) return;
  if (rois.is_cuda()) TS_CUDA_CALL(roi_levels_kernel_cuda(levels, rois, canonical_scale, canonical_level, k_min, k_max));
  else roi_levels_kernel_cpu(levels, rois, canonical_scale, canonical_level, k_min, k_max);
}

}  // namespace tessera
