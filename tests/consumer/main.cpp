// Uses the installed library: a small autograd computation whose gradient is known in closed form,
// and a matrix product through OpenBLAS, whose kernels tessera chose for this CPU by itself
// (check_install.cmake runs this with OPENBLAS_CORETYPE unset).
#include <tessera/kernels/matmul.h>
#include <tessera/tessera.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>

namespace {

// The kernel family this CPU's feature flags call for, read from /proc/cpuinfo (not from tessera).
std::string expected_kernels() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    auto has = [&](const char* f) { return (line + " ").find(std::string(" ") + f + " ") != std::string::npos; };
    if (has("avx512f") && has("avx512bw") && has("avx512dq") && has("avx512vl")) return "SkylakeX";
    if (has("avx2") && has("fma")) return "Haswell";
    return "";
  }
  return "";
}

}  // namespace

int main() {
  using namespace tessera;
  Tensor x = from_vector<float>({1.f, 2.f, 3.f}).requires_grad_();
  Tensor y = sum(mul(x, x));  // y = sum x^2, dy/dx = 2x
  y.backward();
  std::vector<float> g = x.grad().to_vector<float>();
  bool ok = std::fabs(y.item<float>() - 14.f) < 1e-6f && g[0] == 2.f && g[1] == 4.f && g[2] == 6.f;
  // [[1, 2], [3, 4]] @ [[5, 6], [7, 8]] = [[19, 22], [43, 50]]
  const std::vector<float> p =
      matmul(from_vector<float>({1, 2, 3, 4}, {2, 2}), from_vector<float>({5, 6, 7, 8}, {2, 2})).to_vector<float>();
  ok = ok && p == std::vector<float>{19, 22, 43, 50};
  const std::string info = cpu_blas_info(), want = expected_kernels();
  const bool kernels_ok = want.empty() || info.find("OpenBLAS " + want + " kernels") != std::string::npos ||
                          (want == "Haswell" && info.find("OpenBLAS Zen kernels") != std::string::npos);
  std::printf("consumer: y=%g grad=[%g %g %g] matmul=[%g %g %g %g] cuda=%s\nconsumer: %s (this CPU calls for %s) -> %s\n",
              y.item<float>(), g[0], g[1], g[2], p[0], p[1], p[2], p[3], cuda::is_available() ? "yes" : "no", info.c_str(),
              want.empty() ? "OpenBLAS's own choice" : want.c_str(), ok && kernels_ok ? "ok" : "WRONG");
  return ok && kernels_ok ? 0 : 1;
}
