// Scratch memory for the CPU kernels (im2col bands, Winograd's transformed tiles, float32 sums):
// taken from the caching host allocator (core/allocator.h), so that a large buffer freed by one
// convolution is handed to the next one as it is, instead of being mapped afresh and zero-filled
// page by page by the kernel (measured: 7% of a bfloat16 U-Net training step in page faults and
// clear_page with std::vector buffers). Not initialized: every user writes what it reads.
#pragma once

#include <cstddef>
#include <type_traits>

#include "core/allocator.h"

namespace tessera::cpu {

template <class T>
class Scratch {
  static_assert(std::is_trivially_copyable_v<T>, "Scratch holds plain numbers");

 public:
  Scratch() = default;
  explicit Scratch(size_t n) { resize(n); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { release(); }

  // n elements; the contents are not kept when it grows.
  void resize(size_t n) {
    if (n > capacity_) {
      release();
      data_ = static_cast<T*>(cpu_allocator()->allocate(n * sizeof(T)));
      capacity_ = n;
    }
    size_ = n;
  }
  T* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  void release() {
    if (data_) cpu_allocator()->deallocate(data_);
    data_ = nullptr;
    capacity_ = size_ = 0;
  }
  T* data_ = nullptr;
  size_t capacity_ = 0, size_ = 0;
};

}  // namespace tessera::cpu
