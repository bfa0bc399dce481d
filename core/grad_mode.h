// Grad mode: a thread-local switch that autograd reads before recording a graph. It lives in core
// so that in-place writes (fill_, copy_) can refuse to clobber a leaf that requires grad.
#pragma once

namespace tessera {

struct GradMode {
  static bool is_enabled();
  static void set_enabled(bool enabled);
};

// Turns recording off for its scope (inference, optimizer updates), as torch.no_grad().
class NoGradGuard {
 public:
  NoGradGuard() : previous_(GradMode::is_enabled()) { GradMode::set_enabled(false); }
  ~NoGradGuard() { GradMode::set_enabled(previous_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// Turns recording back on inside a NoGradGuard (rarely needed).
class EnableGradGuard {
 public:
  EnableGradGuard() : previous_(GradMode::is_enabled()) { GradMode::set_enabled(true); }
  ~EnableGradGuard() { GradMode::set_enabled(previous_); }
  EnableGradGuard(const EnableGradGuard&) = delete;
  EnableGradGuard& operator=(const EnableGradGuard&) = delete;

 private:
  bool previous_;
};

class Tensor;
// An Error when `t` requires grad and grad mode is on: tessera does not record in-place writes.
void check_inplace_allowed(const Tensor& t, const char* op);

}  // namespace tessera
