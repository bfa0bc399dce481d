// Uses the installed library: a small autograd computation whose gradient is known in closed form.
#include <tessera/tessera.h>

#include <cmath>
#include <cstdio>

int main() {
  using namespace tessera;
  Tensor x = from_vector<float>({1.f, 2.f, 3.f}).requires_grad_();
  Tensor y = sum(mul(x, x));  // y = sum x^2, dy/dx = 2x
  y.backward();
  std::vector<float> g = x.grad().to_vector<float>();
  const bool ok = std::fabs(y.item<float>() - 14.f) < 1e-6f && g[0] == 2.f && g[1] == 4.f && g[2] == 6.f;
  std::printf("consumer: y=%g grad=[%g %g %g] cuda=%s -> %s\n", y.item<float>(), g[0], g[1], g[2],
              cuda::is_available() ? "yes" : "no", ok ? "ok" : "WRONG");
  return ok ? 0 : 1;
}
