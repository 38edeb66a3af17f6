// Minimal thread-safe logging to stderr: "2026-11-28T04:47:10.123Z I [component] message".
// Level from SetLogLevel() or the FAIRY_LOG_LEVEL environment variable (debug, info, warn, error).
#pragma once

#include <sstream>
#include <string>
#include <string_view>

namespace fairy {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
// Parses "debug", "info", "warn", "error", "off"; returns false on anything else.
bool ParseLogLevel(std::string_view text, LogLevel* level);
void LogLine(LogLevel level, std::string_view component, std::string_view message);

namespace internal {
class LogMessage {
 public:
  LogMessage(LogLevel level, std::string_view component) : level_(level), component_(component) {}
  ~LogMessage() { LogLine(level_, component_, stream_.str()); }
  std::ostringstream& stream() { return stream_; }

 private:
  LogLevel level_;
  std::string_view component_;
  std::ostringstream stream_;
};
}  // namespace internal

}  // namespace fairy

// FAIRY_LOG(kInfo, "worker") << "connected to " << endpoint;
#define FAIRY_LOG(level, component)                                  \
  if (::fairy::LogLevel::level < ::fairy::GetLogLevel()) {           \
  } else                                                             \
    ::fairy::internal::LogMessage(::fairy::LogLevel::level, component).stream()
