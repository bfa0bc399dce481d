// Whole-file reads and atomic writes.
#include "core/file_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "core/error.h"

namespace tessera {

std::vector<char> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  TS_CHECK(in.good(), "cannot open '", path, "': ", std::strerror(errno));
  const std::streamoff size = in.tellg();
  TS_CHECK(size >= 0, "cannot read '", path, "': cannot determine its size");
  std::vector<char> bytes(static_cast<size_t>(size));
  in.seekg(0);
  if (size > 0) in.read(bytes.data(), size);
  TS_CHECK(in.good() || (size == 0), "cannot read '", path, "': read failed");
  return bytes;
}

void write_file_atomic(const std::string& path, const std::function<void(std::ostream&)>& write) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  try {
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      TS_CHECK(out.good(), "cannot create '", tmp, "': ", std::strerror(errno));
      write(out);
      out.flush();
      TS_CHECK(out.good(), "writing '", tmp, "' failed (disk full?)");
    }
    const int fd = ::open(tmp.c_str(), O_RDONLY);
    TS_CHECK(fd >= 0, "cannot reopen '", tmp, "' to sync it: ", std::strerror(errno));
    const int rc = ::fsync(fd);
    ::close(fd);
    TS_CHECK(rc == 0, "fsync of '", tmp, "' failed: ", std::strerror(errno));
    TS_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, "cannot rename '", tmp, "' to '", path, "': ",
             std::strerror(errno));
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
}

}  // namespace tessera
