// The time source of the scheduler and the stores. Everything that decides by time takes a Clock,
// so tests drive time with FakeClock and never sleep.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace fairy::scheduler {

using TimeMs = int64_t;  // milliseconds since the Unix epoch

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimeMs NowMs() const = 0;
};

// Wall-clock time (system_clock, so timestamps survive a coordinator restart). Thread-safe.
class SystemClock final : public Clock {
 public:
  TimeMs NowMs() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

// A clock that moves only when told. Thread-safe.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(TimeMs start_ms = 1'700'000'000'000) : now_ms_(start_ms) {}
  TimeMs NowMs() const override { return now_ms_.load(); }
  void Set(TimeMs now_ms) { now_ms_.store(now_ms); }
  void Advance(TimeMs delta_ms) { now_ms_.fetch_add(delta_ms); }

 private:
  std::atomic<TimeMs> now_ms_;
};

}  // namespace fairy::scheduler
