// Command-line parsing for the drivers.
#include "drivers/args.h"

#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "core/error.h"

namespace tessera::cli {

Args::Args(std::string program, std::string summary) : program_(std::move(program)), summary_(std::move(summary)) {}

Args& Args::option(const std::string& name, const std::string& default_value, const std::string& help) {
  decls_[name] = {default_value, help, false};
  order_.push_back(name);
  return *this;
}

Args& Args::flag(const std::string& name, const std::string& help) {
  decls_[name] = {"", help, true};
  order_.push_back(name);
  return *this;
}

std::string Args::help() const {
  std::ostringstream ss;
  ss << summary_ << "\n\nusage: " << program_ << " [options]\n\noptions:\n";
  for (const std::string& n : order_) {
    const Decl& d = decls_.at(n);
    std::string left = "  --" + n + (d.is_flag ? "" : " VALUE");
    if (left.size() < 26) left.resize(26, ' ');
    ss << left << " " << d.help;
    if (!d.is_flag && !d.default_value.empty()) ss << " (default: " << d.default_value << ")";
    ss << "\n";
  }
  ss << "  --help                     this text\n";
  return ss.str();
}

void Args::parse(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(help().c_str(), stdout);
      std::exit(0);
    }
    if (a.rfind("--", 0) != 0) {
      positional_.push_back(a);
      continue;
    }
    std::string name = a.substr(2), value;
    const auto eq = name.find('=');
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    auto it = decls_.find(name);
    TS_CHECK(it != decls_.end(), program_, ": unknown option --", name, " (see --help)");
    if (it->second.is_flag) {
      TS_CHECK(eq == std::string::npos, program_, ": --", name, " takes no value");
      values_[name] = "1";
      continue;
    }
    if (eq == std::string::npos) {
      TS_CHECK(i + 1 < argc, program_, ": --", name, " needs a value");
      value = argv[++i];
    }
    values_[name] = value;
  }
}

std::string Args::str(const std::string& name) const {
  auto d = decls_.find(name);
  TS_CHECK(d != decls_.end(), program_, ": internal: undeclared option ", name);
  auto v = values_.find(name);
  return v != values_.end() ? v->second : d->second.default_value;
}

int64_t Args::integer(const std::string& name) const {
  const std::string s = str(name);
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  TS_CHECK(!s.empty() && end && *end == '\0', program_, ": --", name, " must be an integer, got '", s, "'");
  return v;
}

double Args::number(const std::string& name) const {
  const std::string s = str(name);
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  TS_CHECK(!s.empty() && end && *end == '\0', program_, ": --", name, " must be a number, got '", s, "'");
  return v;
}

bool Args::has(const std::string& name) const {
  auto v = values_.find(name);
  if (v == values_.end()) return false;
  return decls_.at(name).is_flag || !v->second.empty();
}

std::string format_duration(double seconds) {
  if (!(seconds >= 0) || seconds > 1e7) return "?";
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", (long long)(s / 3600), (long long)(s / 60 % 60), (long long)(s % 60));
  else std::snprintf(buf, sizeof buf, "%lld:%02lld", (long long)(s / 60), (long long)(s % 60));
  return buf;
}

}  // namespace tessera::cli
