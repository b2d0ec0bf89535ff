#pragma once
// A small, strict command-line parser for the edgehub subcommands.
//
// Accepted forms: `--flag value`, `--flag=value`, `--switch`, positional arguments, and `--`
// to end flags. Every flag must be declared: an unknown flag, a missing value, a repeated flag
// or a wrong number of positionals is an error (the binary prints it on one line and exits 2).
// `-h`/`--help` anywhere asks for the command's help.
//
// Thread-safety: none needed (used once, on the main thread). Cold path.
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace edgehub::cli {

class ArgParser {
 public:
  // `command` is the full command path ("edgehub run"); `positionals` documents them in the
  // usage line ("MANIFEST [--message FILE]"); min/max bound their number.
  ArgParser(std::string command, std::string summary, std::string positionals = "",
            size_t min_positionals = 0, size_t max_positionals = 0);

  // A flag that takes a value. `default_text` is shown in help only.
  ArgParser& flag(std::string name, std::string value_name, std::string help,
                  std::string default_text = "");
  // A flag without a value.
  ArgParser& toggle(std::string name, std::string help);

  core::Status parse(const std::vector<std::string>& args);

  bool helpRequested() const { return help_; }
  bool has(std::string_view name) const;
  std::optional<std::string> value(std::string_view name) const;
  std::string valueOr(std::string_view name, std::string fallback) const;
  const std::vector<std::string>& positionals() const { return positional_values_; }

  std::string helpText() const;
  const std::string& command() const { return command_; }

 private:
  struct Spec {
    std::string name;
    std::string value_name;  // empty for a toggle
    std::string help;
    std::string default_text;
  };
  const Spec* find(std::string_view name) const;

  std::string command_;
  std::string summary_;
  std::string positionals_usage_;
  size_t min_positionals_;
  size_t max_positionals_;
  std::vector<Spec> specs_;
  std::map<std::string, std::string, std::less<>> values_;
  std::vector<std::string> positional_values_;
  bool help_ = false;
};

// Parses an unsigned decimal integer flag value within [min, max]; the error names the flag.
core::Result<uint64_t> parseUnsignedFlag(std::string_view flag, std::string_view text, uint64_t min,
                                         uint64_t max);

}  // namespace edgehub::cli
