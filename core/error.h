// Errors: tessera::Error carries file, line and a message built from any streamable values.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace tessera {

class Error : public std::runtime_error {
 public:
  Error(const char* file, int line, const std::string& message);
  const std::string& message() const { return message_; }
  const char* file() const { return file_; }
  int line() const { return line_; }

 private:
  std::string message_;
  const char* file_;
  int line_;
};

namespace detail {

template <class... Args>
std::string concat(const Args&... args) {
  std::ostringstream ss;
  (ss << ... << args);
  return ss.str();
}

[[noreturn]] void throw_error(const char* file, int line, const std::string& message);

}  // namespace detail
}  // namespace tessera

// TS_CHECK(cond, "message ", values...) throws tessera::Error when cond is false.
#define TS_CHECK(cond, ...)                                                            \
  do {                                                                                 \
    if (!(cond)) [[unlikely]]                                                          \
      ::tessera::detail::throw_error(__FILE__, __LINE__,                               \
                                     ::tessera::detail::concat(__VA_ARGS__));          \
  } while (0)

// TS_ERROR("message ", values...) throws unconditionally.
#define TS_ERROR(...) \
  ::tessera::detail::throw_error(__FILE__, __LINE__, ::tessera::detail::concat(__VA_ARGS__))
