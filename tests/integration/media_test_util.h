// Helpers for the media integration tests: the shared manifest, shell commands, ffprobe JSON.
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/media/chunk.h"
#include "common/media/frame_reader.h"
#include "tests/support/shell.h"
#include "tests/support/test_paths.h"

namespace fairy::media::testing {

inline const nlohmann::json& Manifest() {
  static const nlohmann::json manifest = [] {
    std::ifstream in(fairy::testing::MediaPath("manifest.json"));
    return nlohmann::json::parse(in);
  }();
  return manifest;
}

inline const nlohmann::json& Clip(const std::string& name) {
  static const nlohmann::json kNone = nlohmann::json::object();
  for (const auto& f : Manifest()["files"]) {
    if (f["name"] == name) return f;
  }
  ADD_FAILURE() << "no clip " << name << " in manifest.json";
  return kNone;
}

// Runs a shell command; returns its stdout, *exit_code its status.
inline std::string Run(const std::string& command, int* exit_code = nullptr) {
  fairy::testing::ShellResult result = fairy::testing::RunShell(command);
  if (exit_code != nullptr) *exit_code = result.exit_code;
  return result.output;
}

inline std::string Quote(const std::string& s) { return fairy::testing::ShellQuote(s); }

// ffprobe -count_frames of the first video stream and all audio streams, as JSON.
inline nlohmann::json FFprobe(const std::string& path) {
  std::string out =
      Run("ffprobe -v error -count_frames -show_streams -show_format -of json " + Quote(path));
  return nlohmann::json::parse(out, nullptr, false);
}

// Decodes [first, last) of `path` into a vector of frames.
inline std::vector<RgbFrame> DecodeAll(const std::string& path, const DecodeOptions& options,
                                       int64_t first, int64_t last) {
  std::vector<RgbFrame> frames;
  Status s = DecodeRange(path, options, first, last, [&](const RgbFrame& f) {
    frames.push_back(f);
    return Status::OK();
  });
  EXPECT_TRUE(s.ok()) << s.ToString();
  return frames;
}

// Writes frames to a chunk at `path` (first index from the first frame).
inline Status WriteChunk(const std::string& path, const std::vector<RgbFrame>& frames, size_t begin,
                         size_t end) {
  ChunkWriterOptions o;
  o.width = frames[begin].width;
  o.height = frames[begin].height;
  o.first_index = frames[begin].index;
  FAIRY_ASSIGN_OR_RETURN(auto writer, ChunkWriter::Create(path, o));
  for (size_t i = begin; i < end; ++i) FAIRY_RETURN_IF_ERROR(writer->Append(frames[i]));
  return writer->Finish();
}

inline std::vector<RgbFrame> ReadChunk(const std::string& path) {
  std::vector<RgbFrame> frames;
  auto reader = ChunkReader::Open(path);
  EXPECT_TRUE(reader.ok()) << reader.status().ToString();
  if (!reader.ok()) return frames;
  RgbFrame f;
  for (;;) {
    auto got = (*reader)->Next(&f);
    EXPECT_TRUE(got.ok()) << got.status().ToString();
    if (!got.ok() || !*got) break;
    frames.push_back(f);
  }
  return frames;
}

}  // namespace fairy::media::testing
