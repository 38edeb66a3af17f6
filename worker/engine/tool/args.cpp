#include "worker/engine/tool/args.h"

namespace fairy::engine::tool {
namespace {

bool IsOption(const std::string& token) { return token.size() > 2 && token.rfind("--", 0) == 0; }

std::string NameOf(const std::string& token) { return token.substr(0, token.find('=')); }

}  // namespace

Args::Args(int argc, char** argv, int first) {
  for (int i = first; i < argc; ++i) tokens_.emplace_back(argv[i]);
}

std::string Args::Value(const std::string& name, const std::string& fallback) {
  consumed_.insert(name);
  std::string value = fallback;
  for (size_t i = 0; i < tokens_.size(); ++i) {
    if (tokens_[i] == "--") break;
    if (!IsOption(tokens_[i]) || NameOf(tokens_[i]) != name) continue;
    const size_t eq = tokens_[i].find('=');
    if (eq != std::string::npos) {
      value = tokens_[i].substr(eq + 1);
    } else if (i + 1 < tokens_.size()) {
      value = tokens_[++i];
    }
  }
  return value;
}

bool Args::Has(const std::string& name) {
  consumed_.insert(name);
  for (const auto& token : tokens_) {
    if (token == "--") break;
    if (IsOption(token) && NameOf(token) == name) return true;
  }
  return false;
}

bool Args::Flag(const std::string& name) {
  flags_.insert(name);
  for (const auto& token : tokens_) {
    if (token == "--") break;
    if (token == name) return true;
  }
  return false;
}

std::vector<std::string> Args::Positionals() {
  std::vector<std::string> out;
  bool options_done = false;
  for (size_t i = 0; i < tokens_.size(); ++i) {
    const std::string& token = tokens_[i];
    if (options_done) {
      out.push_back(token);
    } else if (token == "--") {
      options_done = true;
    } else if (IsOption(token)) {
      // A value option without "=" swallows the next token.
      if (token.find('=') == std::string::npos && flags_.count(token) == 0 &&
          i + 1 < tokens_.size()) {
        ++i;
      }
    } else {
      out.push_back(token);
    }
  }
  return out;
}

bool Args::Finish(std::string* error) const {
  for (size_t i = 0; i < tokens_.size(); ++i) {
    const std::string& token = tokens_[i];
    if (token == "--") break;
    if (!IsOption(token)) continue;
    const std::string name = NameOf(token);
    if (flags_.count(name) != 0) {
      if (token.find('=') != std::string::npos) {
        *error = "option " + name + " takes no value";
        return false;
      }
      continue;
    }
    if (consumed_.count(name) == 0) {
      *error = "unknown option " + name;
      return false;
    }
    if (token.find('=') == std::string::npos) {
      if (i + 1 >= tokens_.size()) {
        *error = "option " + name + " needs a value";
        return false;
      }
      ++i;
    }
  }
  return true;
}

std::vector<std::string> SplitComma(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = text.find(',', start);
    const std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!item.empty()) out.push_back(item);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

}  // namespace fairy::engine::tool
