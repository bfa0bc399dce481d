// CUDA launches of the copy kernel, and byte copies between devices.
#include "core/copy.h"
#include "core/cuda/launch.cuh"

namespace tessera {

void copy_kernel_cuda(const Tensor& dst, const Tensor& src) {
  copy_kernel(CudaLaunch{dst.device().index}, dst, src);
}

void copy_bytes_cuda(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes) {
  if (nbytes == 0) return;
  const int dev = dst_device.is_cuda() ? dst_device.index : src_device.index;
  cuda::DeviceGuard guard(dev);
  cudaStream_t s = cuda::stream(dev);
  if (dst_device.is_cuda() && src_device.is_cuda()) {
    if (dst_device.index == src_device.index) {
      TS_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToDevice, s));
    } else {
      // The source stream's pending writes must land before the peer copy starts.
      TS_CUDA_CHECK(cudaStreamSynchronize(cuda::stream(src_device.index)));
      TS_CUDA_CHECK(cudaMemcpyPeerAsync(dst, dst_device.index, src, src_device.index, nbytes, s));
      TS_CUDA_CHECK(cudaStreamSynchronize(s));
    }
    return;
  }
  const cudaMemcpyKind kind = dst_device.is_cuda() ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost;
  TS_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, kind, s));
  // Pageable host memory: the host buffer must stay valid (H2D) or be filled (D2H) on return.
  TS_CUDA_CHECK(cudaStreamSynchronize(s));
}

}  // namespace tessera
