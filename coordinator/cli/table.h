// Aligned text tables for CLI listings (like `cueman -lf`): a header row, then one row per item,
// columns padded to their widest cell. Numeric-looking columns may be right-aligned.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fairy::cli {

class Table {
 public:
  explicit Table(std::vector<std::string> header, std::vector<bool> right_align = {})
      : header_(std::move(header)), right_(std::move(right_align)) {}
  void AddRow(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  size_t rows() const { return rows_.size(); }
  // Rendered with two spaces between columns, a trailing newline per row.
  std::string Render() const;

 private:
  std::vector<std::string> header_;
  std::vector<bool> right_;
  std::vector<std::vector<std::string>> rows_;
};

// 83 s -> "1m23s"; 4000 s -> "1h06m40s"; negative or unknown -> "-".
std::string FormatDuration(double seconds);
// Unix ms -> local "MM-DD HH:MM:SS"; 0 -> "-".
std::string FormatTime(int64_t unix_ms);
// "12.3" (one decimal), "-" when not finite or <= 0.
std::string FormatRate(double per_second);
// "[#########.........]" of `width` cells for done/total.
std::string ProgressBar(int64_t done, int64_t total, int width);

}  // namespace fairy::cli
