#include "coordinator/cli/table.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>

namespace fairy::cli {

std::string Table::Render() const {
  size_t cols = header_.size();
  for (const auto& r : rows_) cols = std::max(cols, r.size());
  std::vector<size_t> width(cols, 0);
  auto measure = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  };
  measure(header_);
  for (const auto& r : rows_) measure(r);
  std::string out;
  auto emit = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < cols; ++i) {
      std::string cell = i < row.size() ? row[i] : "";
      std::string pad(width[i] - cell.size(), ' ');
      bool right = i < right_.size() && right_[i];
      if (i > 0) line += "  ";
      line += right ? pad + cell : (i + 1 == cols ? cell : cell + pad);
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  };
  emit(header_);
  for (const auto& r : rows_) emit(r);
  return out;
}

std::string FormatDuration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "-";
  int64_t s = static_cast<int64_t>(std::llround(seconds));
  char buf[64];
  if (s < 60) {
    std::snprintf(buf, sizeof(buf), "%llds", static_cast<long long>(s));
  } else if (s < 3600) {
    std::snprintf(buf, sizeof(buf), "%lldm%02llds", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  } else {
    std::snprintf(buf, sizeof(buf), "%lldh%02lldm%02llds", static_cast<long long>(s / 3600),
                  static_cast<long long>((s / 60) % 60), static_cast<long long>(s % 60));
  }
  return buf;
}

std::string FormatTime(int64_t unix_ms) {
  if (unix_ms <= 0) return "-";
  std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%m-%d %H:%M:%S", &tm);
  return buf;
}

std::string FormatRate(double per_second) {
  if (!std::isfinite(per_second) || per_second <= 0) return "-";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f", per_second);
  return buf;
}

std::string ProgressBar(int64_t done, int64_t total, int width) {
  int filled = total > 0 ? static_cast<int>(std::clamp<int64_t>(done * width / total, 0, width)) : 0;
  std::string bar;
  bar.reserve(static_cast<size_t>(width) + 2);
  bar.push_back('[');
  bar.append(static_cast<size_t>(filled), '#');
  bar.append(static_cast<size_t>(width - filled), '.');
  bar.push_back(']');
  return bar;
}

}  // namespace fairy::cli
