// OpenBLAS loaded on first use, with the kernels this CPU runs best (see blas.h).
//
// OpenBLAS chooses its kernel family (Prescott, Haswell, SkylakeX, ...) once, in the constructor
// that runs when the library loads, from the CPU model or from OPENBLAS_CORETYPE. An OpenBLAS
// older than the CPU does not know the model and takes its SSE3 kernels (Debian 12's 0.3.21 on an
// Emerald Rapids Xeon: a 1024^3 SGEMM 4.8x slower than with its AVX-512 ones). Linked at build
// time, it would have chosen before main(); loaded here, tessera sets OPENBLAS_CORETYPE from the
// CPU's own feature bits for the moment of the dlopen (a user's setting is left alone), then
// restores the environment, so that programs this process starts choose for themselves.
#include "kernels/cpu/blas.h"

#include <dlfcn.h>
#include <link.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/dynlib.h"
#include "core/error.h"
#include "kernels/matmul.h"

namespace tessera::blas {

namespace {

// Kernel families at least as fast as `best` for GEMM (Cooperlake and SapphireRapids add bf16 and
// AMX routines to SkylakeX's; Zen runs Haswell's with its own blocking).
bool as_good_as(const std::string& core, const std::string& best) {
  if (best == "SkylakeX") return core == "SkylakeX" || core == "Cooperlake" || core == "SapphireRapids";
  if (best == "Haswell")
    return core == "Haswell" || core == "Zen" || core == "SkylakeX" || core == "Cooperlake" || core == "SapphireRapids";
  return true;
}

std::vector<std::string> candidates() {
  if (const char* p = std::getenv("TESSERA_OPENBLAS"); p != nullptr && *p != '\0') return {p};
  std::vector<std::string> c;
#ifdef TESSERA_OPENBLAS_PATH
  c.push_back(TESSERA_OPENBLAS_PATH);  // the OpenMP build tessera was configured with
#endif
  c.push_back("libopenblas.so.0");  // the run path, LD_LIBRARY_PATH, the system's choice
  return c;
}

std::string loaded_path(void* handle, const std::string& fallback) {
  link_map* map = nullptr;
  if (dlinfo(handle, RTLD_DI_LINKMAP, &map) == 0 && map != nullptr && map->l_name != nullptr && *map->l_name != '\0')
    return map->l_name;
  return fallback;
}

OpenBlas load() {
  OpenBlas b;
  const std::vector<std::string> names = candidates();
  void* handle = nullptr;
  for (const std::string& n : names) {  // already in the process: its kernels were chosen when it loaded
    handle = dlopen(n.c_str(), RTLD_NOW | RTLD_NOLOAD);
    if (handle != nullptr) {
      b.preloaded = true;
      b.path = n;
      break;
    }
  }
  const bool user_chose = std::getenv("OPENBLAS_CORETYPE") != nullptr;
  if (handle == nullptr) {
    const std::string choice = user_chose ? "" : best_coretype();
    if (!choice.empty()) setenv("OPENBLAS_CORETYPE", choice.c_str(), 1);
    std::string errors;
    for (const std::string& n : names) {
      handle = dlopen(n.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (handle != nullptr) {
        b.path = n;
        break;
      }
      const char* e = dlerror();
      errors += std::string(errors.empty() ? "" : "; ") + (e ? e : n);
    }
    if (!choice.empty()) unsetenv("OPENBLAS_CORETYPE");
    TS_CHECK(handle != nullptr, "cannot load OpenBLAS, which tessera's CPU matrix products and convolutions use: ", errors,
             " (Debian: apt-get install libopenblas0-openmp; or set TESSERA_OPENBLAS to the library's path)");
    b.coretype = choice;
  }
  b.path = loaded_path(handle, b.path);
  bind_symbol(handle, "cblas_sgemm", b.sgemm, "OpenBLAS");
  bind_symbol(handle, "cblas_dgemm", b.dgemm, "OpenBLAS");
  bind_symbol(handle, "openblas_get_corename", b.corename, "OpenBLAS");
  // Loaded before tessera could choose (a program that links OpenBLAS itself) with kernels older
  // than the CPU's: only the program's start can change that.
  const std::string core = b.corename() ? b.corename() : "";
  const std::string best = best_coretype();
  if (b.preloaded && !user_chose && !as_good_as(core, best))
    std::fprintf(stderr,
                 "tessera: OpenBLAS was loaded before tessera with its %s kernels, older than this CPU's vector units; "
                 "matrix products and convolutions run several times slower. Set OPENBLAS_CORETYPE=%s before the "
                 "program starts, or let tessera load OpenBLAS (do not link it).\n",
                 core.c_str(), best.c_str());
  return b;
}

}  // namespace

std::string best_coretype() {
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl"))
    return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
  return "";
}

const OpenBlas& openblas() {
  static const OpenBlas lib = load();
  return lib;
}

}  // namespace tessera::blas

namespace tessera {

std::string cpu_blas_info() {
  const blas::OpenBlas& b = blas::openblas();
  const char* core = b.corename();
  std::string info = std::string("OpenBLAS ") + (core ? core : "?") + " kernels (";
  if (b.preloaded) info += "loaded by the program before tessera";
  else if (!b.coretype.empty()) info += "OPENBLAS_CORETYPE=" + b.coretype + " set by tessera from the CPU's features";
  else if (const char* user = std::getenv("OPENBLAS_CORETYPE")) info += std::string("the user's OPENBLAS_CORETYPE=") + user;
  else info += "OpenBLAS's own choice";
  return info + "), " + b.path;
}

}  // namespace tessera
