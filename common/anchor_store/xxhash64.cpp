// XXH64 per the xxHash specification (doc/xxhash_spec.md). Little-endian loads via memcpy, so it is
// correct on any alignment; the compiler turns them into plain loads on x86-64 and arm64.
#include <algorithm>
#include <bit>
#include <cstring>

#include "common/anchor_store/anchor_store.h"

namespace fairy::anchor {
namespace {

constexpr uint64_t kP1 = 0x9E3779B185EBCA87ULL;
constexpr uint64_t kP2 = 0xC2B2AE3D27D4EB4FULL;
constexpr uint64_t kP3 = 0x165667B19E3779F9ULL;
constexpr uint64_t kP4 = 0x85EBCA77C2B2AE63ULL;
constexpr uint64_t kP5 = 0x27D4EB2F165667C5ULL;

inline uint64_t Rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
inline uint64_t Load64(const unsigned char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap64(v);
  return v;
}
inline uint32_t Load32(const unsigned char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap32(v);
  return v;
}
inline uint64_t Round(uint64_t acc, uint64_t lane) {
  acc += lane * kP2;
  acc = Rotl(acc, 31);
  return acc * kP1;
}
inline uint64_t Merge(uint64_t acc, uint64_t v) {
  acc ^= Round(0, v);
  return acc * kP1 + kP4;
}

uint64_t Finish(uint64_t acc, const unsigned char* p, size_t len) {
  while (len >= 8) {
    acc ^= Round(0, Load64(p));
    acc = Rotl(acc, 27) * kP1 + kP4;
    p += 8;
    len -= 8;
  }
  if (len >= 4) {
    acc ^= uint64_t(Load32(p)) * kP1;
    acc = Rotl(acc, 23) * kP2 + kP3;
    p += 4;
    len -= 4;
  }
  while (len > 0) {
    acc ^= uint64_t(*p) * kP5;
    acc = Rotl(acc, 11) * kP1;
    ++p;
    --len;
  }
  acc ^= acc >> 33;
  acc *= kP2;
  acc ^= acc >> 29;
  acc *= kP3;
  acc ^= acc >> 32;
  return acc;
}

// Consumes whole 32-byte stripes; returns the bytes consumed.
size_t Stripes(uint64_t v[4], const unsigned char* p, size_t len) {
  size_t done = 0;
  uint64_t a = v[0], b = v[1], c = v[2], d = v[3];
  while (len - done >= 32) {
    a = Round(a, Load64(p + done));
    b = Round(b, Load64(p + done + 8));
    c = Round(c, Load64(p + done + 16));
    d = Round(d, Load64(p + done + 24));
    done += 32;
  }
  v[0] = a;
  v[1] = b;
  v[2] = c;
  v[3] = d;
  return done;
}

uint64_t Converge(const uint64_t v[4]) {
  uint64_t acc = Rotl(v[0], 1) + Rotl(v[1], 7) + Rotl(v[2], 12) + Rotl(v[3], 18);
  acc = Merge(acc, v[0]);
  acc = Merge(acc, v[1]);
  acc = Merge(acc, v[2]);
  return Merge(acc, v[3]);
}

}  // namespace

uint64_t XxHash64(const void* data, size_t size, uint64_t seed) {
  XxHash64State state(seed);
  state.Update(data, size);
  return state.Digest();
}

XxHash64State::XxHash64State(uint64_t seed) : seed_(seed) {
  v_[0] = seed + kP1 + kP2;
  v_[1] = seed + kP2;
  v_[2] = seed;
  v_[3] = seed - kP1;
}

void XxHash64State::Update(const void* data, size_t size) {
  const auto* p = static_cast<const unsigned char*>(data);
  total_ += size;
  if (buffered_ > 0) {
    size_t take = std::min(size, sizeof(buffer_) - buffered_);
    std::memcpy(buffer_ + buffered_, p, take);
    buffered_ += take;
    p += take;
    size -= take;
    if (buffered_ < sizeof(buffer_)) return;
    Stripes(v_, buffer_, sizeof(buffer_));
    buffered_ = 0;
  }
  size_t done = Stripes(v_, p, size);
  std::memcpy(buffer_, p + done, size - done);
  buffered_ = size - done;
}

uint64_t XxHash64State::Digest() const {
  uint64_t acc = total_ >= 32 ? Converge(v_) : seed_ + kP5;
  acc += total_;
  return Finish(acc, buffer_, buffered_);
}

}  // namespace fairy::anchor
