// CUDA launches of the copy kernel, and byte copies between devices (host memory staged through
// pinned buffers).
#include <algorithm>
#include <cstring>
#include <mutex>
#include <vector>

#include "core/copy.h"
#include "core/cuda.h"
#include "core/cuda/launch.cuh"

namespace tessera {

void copy_kernel_cuda(const Tensor& dst, const Tensor& src) {
  copy_kernel(CudaLaunch{dst.device().index}, dst, src);
}

namespace {

// Copies between pageable host memory and a device go through a pinned staging buffer per device:
// two 8 MiB slots used in turn, each with an event that says when its last transfer finished.
// Host to device returns once the bytes are in pinned memory and their DMA is queued (no stream
// synchronisation: the caller's buffer is free again, the device reads in stream order); device
// to host overlaps the DMA of one slot with the copy out of the other.
constexpr size_t kSlotBytes = size_t{8} << 20;

struct Staging {
  std::mutex mu;
  char* slot[2] = {nullptr, nullptr};
  cudaEvent_t done[2] = {nullptr, nullptr};
  int next = 0;
};

Staging& staging(int device) {
  static std::mutex registry_mu;
  static std::vector<Staging*> all;  // never destroyed (tensors may outlive static destruction)
  std::lock_guard<std::mutex> lock(registry_mu);
  if (all.empty()) all.resize(static_cast<size_t>(cuda::device_count()), nullptr);
  Staging*& s = all.at(static_cast<size_t>(device));
  if (s == nullptr) {
    auto* n = new Staging;
    cuda::DeviceGuard guard(device);
    for (int k = 0; k < 2; ++k) {
      TS_CUDA_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&n->slot[k]), kSlotBytes, cudaHostAllocDefault));
      TS_CUDA_CHECK(cudaEventCreateWithFlags(&n->done[k], cudaEventDisableTiming));
    }
    s = n;
  }
  return *s;
}

void host_to_device(char* dst, const char* src, size_t nbytes, int device, cudaStream_t stream) {
  Staging& st = staging(device);
  std::lock_guard<std::mutex> lock(st.mu);
  for (size_t off = 0; off < nbytes; off += kSlotBytes) {
    const size_t len = std::min(kSlotBytes, nbytes - off);
    const int k = st.next;
    st.next ^= 1;
    TS_CUDA_CHECK(cudaEventSynchronize(st.done[k]));  // the slot's previous DMA has finished
    std::memcpy(st.slot[k], src + off, len);
    TS_CUDA_CHECK(cudaMemcpyAsync(dst + off, st.slot[k], len, cudaMemcpyHostToDevice, stream));
    TS_CUDA_CHECK(cudaEventRecord(st.done[k], stream));
  }
}

void device_to_host(char* dst, const char* src, size_t nbytes, int device, cudaStream_t stream) {
  Staging& st = staging(device);
  std::lock_guard<std::mutex> lock(st.mu);
  const size_t chunks = (nbytes + kSlotBytes - 1) / kSlotBytes;
  auto issue = [&](size_t c) {
    const size_t off = c * kSlotBytes, len = std::min(kSlotBytes, nbytes - off);
    const int k = static_cast<int>(c % 2);
    TS_CUDA_CHECK(cudaMemcpyAsync(st.slot[k], src + off, len, cudaMemcpyDeviceToHost, stream));
    TS_CUDA_CHECK(cudaEventRecord(st.done[k], stream));
  };
  issue(0);
  for (size_t c = 0; c < chunks; ++c) {
    if (c + 1 < chunks) issue(c + 1);  // the next chunk's DMA runs while this one is copied out
    const int k = static_cast<int>(c % 2);
    TS_CUDA_CHECK(cudaEventSynchronize(st.done[k]));
    const size_t off = c * kSlotBytes;
    std::memcpy(dst + off, st.slot[k], std::min(kSlotBytes, nbytes - off));
  }
  st.next = static_cast<int>(chunks % 2);
}

}  // namespace

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
  if (dst_device.is_cuda()) {
    host_to_device(static_cast<char*>(dst), static_cast<const char*>(src), nbytes, dev, s);
  } else {
    device_to_host(static_cast<char*>(dst), static_cast<const char*>(src), nbytes, dev, s);
    cuda::check_device_errors(dev);  // the device has caught up to this point: raise what it flagged
  }
}

}  // namespace tessera
