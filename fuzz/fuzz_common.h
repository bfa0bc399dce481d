// Shared by the libFuzzer targets (fuzz/): runs one parse, accepting a result or a tessera::Error;
// anything else (another exception type, a crash, a sanitizer report, a hang, an allocation over
// -malloc_limit_mb) is a finding. See scripts/fuzz.sh.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <typeinfo>

#include "core/error.h"
#include "core/tensor.h"

namespace tessera::fuzz {

template <class F>
int guard(F&& parse) {
  try {
    parse();
  } catch (const Error&) {
    // the expected answer to bad input
  } catch (const std::exception& e) {
    std::fprintf(stderr, "finding: a %s escaped instead of tessera::Error: %s\n", typeid(e).name(), e.what());
    std::abort();
  }
  return 0;
}

// Reads every element, so that a tensor whose storage is smaller than its shape is caught.
inline void touch(const Tensor& t) {
  if (!t.defined() || t.numel() == 0) return;
  const auto* p = static_cast<const volatile unsigned char*>(t.data_ptr());
  unsigned char sum = 0;
  const size_t n = t.nbytes();  // once: numel() multiplies the shape out on every call
  for (size_t i = 0; i < n; ++i) sum = static_cast<unsigned char>(sum + p[i]);
  (void)sum;
}

}  // namespace tessera::fuzz
