// A small command-line parser for fairy-engine's subcommands (the engine-only build on GPU hosts
// has LibTorch and nothing else, so no CLI11 here).
//
//   Args args(argc, argv, /*first=*/2);        // after "fairy-engine verify"
//   std::string device = args.Value("--device", "cpu");
//   bool list = args.Flag("--list");
//   std::vector<std::string> rest = args.Positionals();
//   if (!args.Finish(&error)) ...               // unknown options, missing values
//
// Options are "--name value" or "--name=value"; "--" ends options.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

namespace fairy::engine::tool {

class Args {
 public:
  Args(int argc, char** argv, int first);

  // The value of option `name` (last one wins), or `fallback` when absent.
  std::string Value(const std::string& name, const std::string& fallback = "");
  bool Has(const std::string& name);
  // A boolean flag (no value).
  bool Flag(const std::string& name);
  // Every positional argument (non-option), in order.
  std::vector<std::string> Positionals();
  // False (with `error` set) when an option was not consumed by Value/Has/Flag, or an option that
  // takes a value had none. Call after all accessors.
  bool Finish(std::string* error) const;

 private:
  std::vector<std::string> tokens_;
  std::set<std::string> flags_;     // names read as flags
  std::set<std::string> consumed_;  // names read with Value/Has
};

// "a,b,c" -> {"a", "b", "c"} (empty items dropped).
std::vector<std::string> SplitComma(const std::string& text);

}  // namespace fairy::engine::tool
