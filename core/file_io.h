// Whole-file reads and atomic writes (temporary file + fsync + rename: a crash never leaves a
// half-written file where a good one was).
#pragma once

#include <functional>
#include <ostream>
#include <string>
#include <vector>

namespace tessera {

// The file's bytes; an Error naming the path if it cannot be opened or read.
std::vector<char> read_file(const std::string& path);

// Calls write(stream) on a temporary file beside `path`, flushes it to disk, then renames it over
// `path`. On any failure the temporary file is removed and `path` is left as it was.
void write_file_atomic(const std::string& path, const std::function<void(std::ostream&)>& write);

}  // namespace tessera
