// A small command-line parser for the drivers: --name value and --flag options, with --help text
// generated from the declarations and errors that name the bad option.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace tessera::cli {

class Args {
 public:
  Args(std::string program, std::string summary);
  // Declarations: name (without --), default value as text ("" for none), help.
  Args& option(const std::string& name, const std::string& default_value, const std::string& help);
  Args& flag(const std::string& name, const std::string& help);
  // Parses argv; prints help and exits 0 on --help; throws tessera::Error on unknown or bad options.
  void parse(int argc, char** argv);

  std::string str(const std::string& name) const;
  int64_t integer(const std::string& name) const;
  double number(const std::string& name) const;
  bool has(const std::string& name) const;  // flag set, or option given a non-empty value
  const std::vector<std::string>& positional() const { return positional_; }
  std::string help() const;

 private:
  struct Decl {
    std::string default_value, help;
    bool is_flag;
  };
  std::string program_, summary_;
  std::vector<std::string> order_;
  std::map<std::string, Decl> decls_;
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

// Formats seconds as h:mm:ss or m:ss.
std::string format_duration(double seconds);

}  // namespace tessera::cli
