#include "common/flags.hpp"

#include <charconv>
#include <iostream>

namespace repl {

Flags::Flags(std::string program, std::string summary)
    : program_(std::move(program)), summary_(std::move(summary)) {}

void Flags::add(std::string name, std::string env, std::string* target, std::string help) {
  flags_.push_back({std::move(name), std::move(env), target, std::move(help), *target});
}
void Flags::add(std::string name, std::string env, int* target, std::string help) {
  flags_.push_back({std::move(name), std::move(env), target, std::move(help), std::to_string(*target)});
}
void Flags::add(std::string name, std::string env, bool* target, std::string help) {
  flags_.push_back({std::move(name), std::move(env), target, std::move(help), *target ? "true" : "false"});
}

const Flags::Flag* Flags::find(const std::string& name) const {
  for (const auto& f : flags_) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

std::optional<std::string> Flags::assign(const Flag& flag, const std::string& value,
                                         const std::string& origin) {
  if (auto* s = std::get_if<std::string*>(&flag.target)) {
    **s = value;
  } else if (auto* i = std::get_if<int*>(&flag.target)) {
    int v = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
    if (ec != std::errc{} || end != value.data() + value.size()) {
      return origin + ": \"" + value + "\" is not an integer";
    }
    **i = v;
  } else {
    bool* b = std::get<bool*>(flag.target);
    if (value == "true" || value == "1") {
      *b = true;
    } else if (value == "false" || value == "0") {
      *b = false;
    } else {
      return origin + ": \"" + value + "\" is not true or false";
    }
  }
  return std::nullopt;
}

Result<Flags::Outcome, std::string> Flags::parse(const std::vector<std::string>& args, const Getenv& getenv) {
  for (const auto& f : flags_) {
    if (f.env.empty()) continue;
    if (const auto v = getenv(f.env.c_str())) {
      if (auto err = assign(f, *v, "$" + f.env)) return Fail(*err);
    }
  }
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") return Outcome::kHelp;
    if (arg.rfind("--", 0) != 0) return Fail("unexpected argument \"" + arg + "\" (see --help)");
    const auto eq = arg.find('=');
    const std::string name = arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    const Flag* f = find(name);
    if (f == nullptr) return Fail("unknown flag --" + name + " (see --help)");
    std::string value;
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
    } else if (std::holds_alternative<bool*>(f->target)) {
      value = "true";
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return Fail("flag --" + name + " needs a value");
    }
    if (auto err = assign(*f, value, "--" + name)) return Fail(*err);
  }
  return Outcome::kRun;
}

std::string Flags::help() const {
  std::string out = "Usage: " + program_ + " [flags]\n\n" + summary_ +
                    "\n\nFlags (each also read from the environment variable shown):\n";
  for (const auto& f : flags_) {
    std::string left = "  --" + f.name;
    if (!std::holds_alternative<bool*>(f.target)) left += " VALUE";
    out += left + "\n      " + f.help;
    if (!f.default_text.empty()) out += " (default \"" + f.default_text + "\")";
    if (!f.env.empty()) out += " [$" + f.env + "]";
    out += "\n";
  }
  out += "  --help\n      print this help and exit\n";
  return out;
}

}  // namespace repl

namespace repl {

std::optional<int> Flags::parse_main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  auto parsed = parse(args, process_getenv);
  if (!parsed) {
    std::cerr << program_ << ": " << parsed.error() << "\n";
    return 2;
  }
  if (*parsed == Outcome::kHelp) {
    std::cout << help();
    return 0;
  }
  return std::nullopt;
}

}  // namespace repl
