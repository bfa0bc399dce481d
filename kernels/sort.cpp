// Sort routing.
#include "kernels/sort.h"

#include "core/dispatch.h"

namespace tessera {

void sort_kernel(const Tensor& values, const Tensor& indices, const Tensor& x, int64_t rows, int64_t D, bool descending) {
  if (x.numel() == 0) return;
  if (x.is_cuda()) TS_CUDA_CALL(sort_kernel_cuda(values, indices, x, rows, D, descending));
  else if (cpu_per_element()) sort_by_keys_cpu(values, indices, x, rows, D, descending);
  else sort_kernel_cpu(values, indices, x, rows, D, descending);
}

}  // namespace tessera
