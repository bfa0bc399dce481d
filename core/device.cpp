// Device parsing and printing.
#include "core/device.h"

#include "core/cuda.h"

#include <cctype>

#include "core/error.h"

namespace tessera {

Device::Device(const std::string& spec) {
  if (spec == "cpu") {
    type = DeviceType::CPU;
    index = 0;
    return;
  }
  if (spec.rfind("cuda", 0) == 0) {
    type = DeviceType::CUDA;
    index = 0;
    if (spec.size() == 4) return;
    bool ok = spec.size() > 5 && spec[4] == ':' && spec.size() <= 8;
    for (size_t i = 5; ok && i < spec.size(); ++i) ok = std::isdigit(static_cast<unsigned char>(spec[i]));
    TS_CHECK(ok, "invalid device string '", spec, "': expected cpu, cuda or cuda:N");
    index = std::stoi(spec.substr(5));
    return;
  }
  TS_ERROR("invalid device string '", spec, "': expected cpu, cuda or cuda:N");
}

std::string Device::str() const {
  return is_cpu() ? std::string("cpu") : "cuda:" + std::to_string(index);
}

std::ostream& operator<<(std::ostream& os, const Device& d) { return os << d.str(); }

namespace cuda {
const char* device_error_op(DeviceError e) {
  switch (e) {
    case DeviceError::IndexSelect: return "index_select";
    case DeviceError::IndexAdd: return "index_add";
    case DeviceError::Gather: return "gather";
    case DeviceError::ScatterAdd: return "scatter_add";
    case DeviceError::None: break;
  }
  return "a kernel";
}
}  // namespace cuda

}  // namespace tessera
