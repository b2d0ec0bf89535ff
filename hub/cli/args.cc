#include "hub/cli/args.h"

#include <charconv>

namespace edgehub::cli {

ArgParser::ArgParser(std::string command, std::string summary, std::string positionals,
                     size_t min_positionals, size_t max_positionals)
    : command_(std::move(command)),
      summary_(std::move(summary)),
      positionals_usage_(std::move(positionals)),
      min_positionals_(min_positionals),
      max_positionals_(max_positionals) {}

ArgParser& ArgParser::flag(std::string name, std::string value_name, std::string help,
                           std::string default_text) {
  specs_.push_back({std::move(name), std::move(value_name), std::move(help), std::move(default_text)});
  return *this;
}

ArgParser& ArgParser::toggle(std::string name, std::string help) {
  specs_.push_back({std::move(name), "", std::move(help), ""});
  return *this;
}

const ArgParser::Spec* ArgParser::find(std::string_view name) const {
  for (const Spec& s : specs_) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

core::Status ArgParser::parse(const std::vector<std::string>& args) {
  bool flags_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (flags_done || arg.size() < 2 || arg[0] != '-') {
      positional_values_.push_back(arg);
      continue;
    }
    if (arg == "--") {
      flags_done = true;
      continue;
    }
    if (arg == "-h" || arg == "--help") {
      help_ = true;
      continue;
    }
    if (arg.rfind("--", 0) != 0) {
      return core::invalidArgument("unknown flag '" + arg + "' for '" + command_ + "'");
    }
    std::string name = arg.substr(2);
    std::optional<std::string> inline_value;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      inline_value = name.substr(eq + 1);
      name.resize(eq);
    }
    const Spec* spec = find(name);
    if (spec == nullptr) {
      return core::invalidArgument("unknown flag '--" + name + "' for '" + command_ + "'");
    }
    if (values_.count(name) != 0) {
      return core::invalidArgument("flag '--" + name + "' given more than once");
    }
    if (spec->value_name.empty()) {
      if (inline_value) return core::invalidArgument("flag '--" + name + "' takes no value");
      values_[name] = "";
      continue;
    }
    if (inline_value) {
      values_[name] = *inline_value;
    } else if (i + 1 < args.size()) {
      values_[name] = args[++i];
    } else {
      return core::invalidArgument("flag '--" + name + "' needs a value (" + spec->value_name + ")");
    }
  }
  if (help_) return core::Status::ok();
  if (positional_values_.size() < min_positionals_) {
    return core::invalidArgument("'" + command_ + "' needs " + positionals_usage_);
  }
  if (positional_values_.size() > max_positionals_) {
    return core::invalidArgument("unexpected argument '" + positional_values_[max_positionals_] +
                                 "' for '" + command_ + "'");
  }
  return core::Status::ok();
}

bool ArgParser::has(std::string_view name) const { return values_.find(name) != values_.end(); }

std::optional<std::string> ArgParser::value(std::string_view name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

std::string ArgParser::valueOr(std::string_view name, std::string fallback) const {
  auto v = value(name);
  return v ? *v : std::move(fallback);
}

std::string ArgParser::helpText() const {
  std::string out = "Usage: " + command_;
  if (!specs_.empty()) out += " [flags]";
  if (!positionals_usage_.empty()) out += " " + positionals_usage_;
  out += "\n\n" + summary_ + "\n";
  if (!specs_.empty()) {
    out += "\nFlags:\n";
    for (const Spec& s : specs_) {
      std::string left = "  --" + s.name;
      if (!s.value_name.empty()) left += " " + s.value_name;
      if (left.size() < 32) left.append(32 - left.size(), ' ');
      else left += "  ";
      out += left + s.help;
      if (!s.default_text.empty()) out += " (default: " + s.default_text + ")";
      out += "\n";
    }
  }
  out += "  -h, --help                    show this help\n";
  return out;
}

core::Result<uint64_t> parseUnsignedFlag(std::string_view flag, std::string_view text, uint64_t min,
                                         uint64_t max) {
  uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() || v < min || v > max) {
    return core::invalidArgument("invalid value '" + std::string(text) + "' for --" +
                                 std::string(flag) + " (expected an integer from " +
                                 std::to_string(min) + " to " + std::to_string(max) + ")");
  }
  return v;
}

}  // namespace edgehub::cli
