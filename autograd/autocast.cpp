// Autocast state (per thread, per device type) and the casts the ops use.
#include "autograd/autocast.h"

namespace tessera {

namespace {

struct State {
  bool enabled[2] = {false, false};
  DType dtype[2] = {DType::BFloat16, DType::Float16};
};

State& state() {
  thread_local State s;
  return s;
}

int slot(DeviceType d) { return d == DeviceType::CUDA ? 1 : 0; }

}  // namespace

AutocastGuard::AutocastGuard(DType dtype, DeviceType device, bool enabled) : device_(device) {
  TS_CHECK(dtype == DType::BFloat16 || dtype == DType::Float16, "AutocastGuard: the low dtype must be bfloat16 or ",
           "float16, got ", dtype_name(dtype));
  State& s = state();
  prev_enabled_ = s.enabled[slot(device)];
  prev_dtype_ = s.dtype[slot(device)];
  s.enabled[slot(device)] = enabled;
  s.dtype[slot(device)] = dtype;
}

AutocastGuard::~AutocastGuard() {
  State& s = state();
  s.enabled[slot(device_)] = prev_enabled_;
  s.dtype[slot(device_)] = prev_dtype_;
}

bool autocast_enabled(DeviceType device) { return state().enabled[slot(device)]; }
DType autocast_dtype(DeviceType device) { return state().dtype[slot(device)]; }

namespace autocast {

bool applies(const Tensor& t) {
  return t.defined() && is_floating(t.dtype()) && t.dtype() != DType::Float64 && autocast_enabled(t.device().type);
}

Tensor cast(const Tensor& t, DType d) {
  if (!t.defined() || !is_floating(t.dtype()) || t.dtype() == DType::Float64 || t.dtype() == d) return t;
  return t.to(d);
}

Suspend::Suspend() {
  State& s = state();
  for (int i = 0; i < 2; ++i) {
    prev_[i] = s.enabled[i];
    s.enabled[i] = false;
  }
}

Suspend::~Suspend() {
  State& s = state();
  for (int i = 0; i < 2; ++i) s.enabled[i] = prev_[i];
}

}  // namespace autocast
}  // namespace tessera
