// cuBLAS through dlopen on first use (see cublas_lazy.h).
#include "core/cuda/cublas_lazy.h"

#include <dlfcn.h>

#include <string>

#include "core/error.h"

namespace tessera::cuda {

namespace {

template <class F>
void bind(void* lib, const char* name, F& fn) {
  fn = reinterpret_cast<F>(dlsym(lib, name));
  TS_CHECK(fn != nullptr, "cuBLAS: ", name, " not found in the loaded library (", dlerror(), ")");
}

}  // namespace

const CublasApi& cublas() {
  static const CublasApi api = [] {
    const std::string name = "libcublas.so." + std::to_string(CUBLAS_VER_MAJOR);
    void* lib = dlopen(name.c_str(), RTLD_NOW | RTLD_GLOBAL);
    std::string first_error = lib ? "" : dlerror();
#ifdef TESSERA_CUBLAS_DIR
    if (lib == nullptr) lib = dlopen((std::string(TESSERA_CUBLAS_DIR) + "/" + name).c_str(), RTLD_NOW | RTLD_GLOBAL);
#endif
    TS_CHECK(lib != nullptr, "cannot load ", name, " (cuBLAS, for matrix products on the GPU): ", first_error,
             "; put its folder on LD_LIBRARY_PATH (the CUDA toolkit's lib64, or the nvidia-cublas Python package's lib)");
    CublasApi a{};
    bind(lib, "cublasCreate_v2", a.create);
    bind(lib, "cublasSetStream_v2", a.set_stream);
    bind(lib, "cublasSetMathMode", a.set_math_mode);
    bind(lib, "cublasSgemmStridedBatched", a.sgemm_strided_batched);
    bind(lib, "cublasDgemmStridedBatched", a.dgemm_strided_batched);
    return a;
  }();
  return api;
}

}  // namespace tessera::cuda
