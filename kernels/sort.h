// Stable sort along the last dim of a contiguous [rows, D] block: values and int64 indices.
// NaN sorts as the largest value. CPU: std::stable_sort per row; CUDA: CUB radix sort (stable),
// segmented when there are several rows.
#pragma once

#include "core/tensor.h"

namespace tessera {

void sort_kernel(const Tensor& values, const Tensor& indices, const Tensor& x, int64_t rows, int64_t D, bool descending);
void sort_kernel_cpu(const Tensor& values, const Tensor& indices, const Tensor& x, int64_t rows, int64_t D, bool descending);
void sort_kernel_cuda(const Tensor& values, const Tensor& indices, const Tensor& x, int64_t rows, int64_t D, bool descending);

}  // namespace tessera
