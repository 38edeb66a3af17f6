#include "config/diagnostics.h"

#include <algorithm>
#include <cctype>

namespace fairy::config {

std::string Diagnostic::ToString() const {
  std::string out = file;
  if (line > 0) {
    out.append(":").append(std::to_string(line));
    if (column > 0) out.append(":").append(std::to_string(column));
  }
  if (!out.empty()) out += ": ";
  if (severity == Severity::kWarning) out += "warning: ";
  if (!field.empty()) out.append(field).append(": ");
  out += message;
  return out;
}

Diagnostic Diagnostic::FileError(std::string file, std::string message, Status::Code code) {
  Diagnostic d;
  d.file = std::move(file);
  d.message = std::move(message);
  d.code = code;
  return d;
}

void Diagnostics::Append(const Diagnostics& other) {
  items_.insert(items_.end(), other.items_.begin(), other.items_.end());
}

void Diagnostics::SortByPosition() {
  std::stable_sort(items_.begin(), items_.end(), [](const Diagnostic& a, const Diagnostic& b) {
    return a.line != b.line ? a.line < b.line : a.column < b.column;
  });
}

int Diagnostics::error_count() const {
  return static_cast<int>(std::count_if(items_.begin(), items_.end(),
                                        [](const Diagnostic& d) { return d.severity == Severity::kError; }));
}

int Diagnostics::warning_count() const { return static_cast<int>(items_.size()) - error_count(); }

Status Diagnostics::ToStatus() const {
  std::string message;
  const Diagnostic* first = nullptr;
  for (const Diagnostic& d : items_) {
    if (d.severity != Severity::kError) continue;
    if (first == nullptr) first = &d;
    if (!message.empty()) message += "\n";
    message += d.ToString();
  }
  if (first == nullptr) return Status::OK();
  switch (first->code) {
    case Status::Code::kPermissionDenied:
      return Status::PermissionDenied(message);
    case Status::Code::kNotFound:
      return Status::NotFound(message);
    case Status::Code::kIOError:
      return Status::IOError(message);
    default:
      return Status::InvalidArgument(message);
  }
}

int EditDistance(std::string_view a, std::string_view b) {
  const size_t n = a.size(), m = b.size();
  // Three rows suffice for the transposition term.
  std::vector<int> prev2(m + 1), prev(m + 1), cur(m + 1);
  for (size_t j = 0; j <= m; ++j) prev[j] = static_cast<int>(j);
  for (size_t i = 1; i <= n; ++i) {
    cur[0] = static_cast<int>(i);
    for (size_t j = 1; j <= m; ++j) {
      const int cost = a[i - 1] == b[j - 1] ? 0 : 1;
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        cur[j] = std::min(cur[j], prev2[j - 2] + 1);
      }
    }
    std::swap(prev2, prev);
    std::swap(prev, cur);
  }
  return prev[m];
}

static std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string DidYouMean(std::string_view word, const std::vector<std::string_view>& candidates) {
  const std::string lower_word = Lower(word);
  std::string best;
  int best_distance = 1 << 30;
  for (std::string_view c : candidates) {
    const int d = Lower(c) == lower_word ? 0 : EditDistance(word, c);
    const int limit = std::max<int>(2, static_cast<int>(c.size()) / 3);
    if (d <= limit && d < best_distance) {
      best_distance = d;
      best = std::string(c);
    }
  }
  return best;
}

}  // namespace fairy::config
