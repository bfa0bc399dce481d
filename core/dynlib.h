// Loading a shared library on first use (OpenBLAS, cuBLAS, NCCL): dlopen by name (the run path,
// LD_LIBRARY_PATH), then from a fallback folder (the one tessera was built against); symbols bound
// one by one, each missing one an Error that names it.
#pragma once

#include <dlfcn.h>

#include <string>

#include "core/error.h"

namespace tessera {

// An Error naming the library, what it is for and where to put it when neither place has it.
inline void* open_library(const std::string& soname, const char* fallback_dir, const std::string& purpose,
                          const std::string& where) {
  void* lib = dlopen(soname.c_str(), RTLD_NOW | RTLD_GLOBAL);
  const std::string first_error = lib ? "" : dlerror();
  if (lib == nullptr && fallback_dir != nullptr) lib = dlopen((std::string(fallback_dir) + "/" + soname).c_str(), RTLD_NOW | RTLD_GLOBAL);
  TS_CHECK(lib != nullptr, "cannot load ", soname, " (", purpose, "): ", first_error, "; put its folder on LD_LIBRARY_PATH (", where, ")");
  return lib;
}

template <class F>
void bind_symbol(void* lib, const char* name, F& fn, const char* library) {
  fn = reinterpret_cast<F>(dlsym(lib, name));
  TS_CHECK(fn != nullptr, library, ": ", name, " not found in the loaded library (", dlerror(), ")");
}

}  // namespace tessera
