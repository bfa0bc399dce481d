// Error construction: "message (at file:line)" so that what() alone tells where it came from.
#include "core/error.h"

namespace tessera {

static std::string with_location(const char* file, int line, const std::string& message) {
  std::string f = file;
  // The path from the repository's root, not the build machine's: __FILE__ is the absolute path
  // the build system passed to the compiler (nvcc included).
#ifdef TESSERA_SOURCE_DIR
  const std::string root = TESSERA_SOURCE_DIR;
  if (f.rfind(root, 0) == 0) f = f.substr(root.size());
#endif
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
