// Error construction: "message (at file:line)" so that what() alone tells where it came from.
#include "core/error.h"

namespace tessera {

static std::string with_location(const char* file, int line, const std::string& message) {
  std::string f = file;
  // Keep the path from the repository's top folders on, not the build machine's absolute path.
  for (const char* top : {"/core/", "/kernels/", "/autograd/", "/layers/", "/tests/", "/bench/"}) {
    auto pos = f.rfind(top);
    if (pos != std::string::npos) {
      f = f.substr(pos + 1);
      break;
    }
  }
  return message + " (at " + f + ":" + std::to_string(line) + ")";
}

Error::Error(const char* file, int line, const std::string& message)
    : std::runtime_error(with_location(file, line, message)),
      message_(message),
      file_(file),
      line_(line) {}

namespace detail {
void throw_error(const char* file, int line, const std::string& message) {
  throw Error(file, line, message);
}
}  // namespace detail
}  // namespace tessera
