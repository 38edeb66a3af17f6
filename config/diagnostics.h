// Diagnostics: every problem found in a job file or a cluster config, with its location.
//
// A Diagnostic prints as `FILE:LINE:COLUMN: FIELD: MESSAGE`, e.g.
//   demo.yaml:7:12: edit.steps: must be between 1 and 200, got 0
// (warnings as `FILE:LINE:COLUMN: warning: FIELD: MESSAGE`). LINE and COLUMN are 1-based; a
// diagnostic without a position (a file that cannot be read) prints as `FILE: FIELD: MESSAGE`, and
// one without a field leaves `FIELD: ` out. Values given on the command line carry the flag as
// their location (`--set redis.url=x: redis.url: ...`).
//
// Readers collect ALL problems of a document into a Diagnostics instead of stopping at the first.
// Not thread-safe; one Diagnostics per parse.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace fairy::config {

enum class Severity { kError, kWarning };

struct Diagnostic {
  std::string file;    // the file name as the user gave it, or a flag such as "--set a.b=1"
  int line = 0;        // 1-based; 0 = no position
  int column = 0;      // 1-based; 0 = no position
  std::string field;   // dotted field path: "edit.steps", "[1].edit.steps"; "" = the whole document
  std::string message;
  Severity severity = Severity::kError;
  Status::Code code = Status::Code::kInvalidArgument;  // kPermissionDenied for storage-root escapes

  std::string ToString() const;

  // An error about a whole file (it cannot be read, ...): no position, no field.
  static Diagnostic FileError(std::string file, std::string message,
                              Status::Code code = Status::Code::kInvalidArgument);
};

class Diagnostics {
 public:
  void Add(Diagnostic d) { items_.push_back(std::move(d)); }
  void Append(const Diagnostics& other);

  const std::vector<Diagnostic>& items() const { return items_; }
  // Orders by line, then column (stable: same position keeps the order found).
  void SortByPosition();

  int error_count() const;
  int warning_count() const;
  bool has_errors() const { return error_count() > 0; }

  // OK when there is no error; otherwise a Status with the code of the first error and every
  // error's ToString() joined by newlines (warnings are left out).
  Status ToStatus() const;

 private:
  std::vector<Diagnostic> items_;
};

// Optimal string alignment distance (Levenshtein plus adjacent transpositions), case-sensitive.
int EditDistance(std::string_view a, std::string_view b);

// The candidate closest to `word` when it is close enough to be a plausible typo (distance at most
// max(2, |candidate| / 3), or equal ignoring case); "" otherwise.
std::string DidYouMean(std::string_view word, const std::vector<std::string_view>& candidates);

}  // namespace fairy::config
