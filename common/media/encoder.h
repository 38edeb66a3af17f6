// Final encode: ordered lossless chunks -> H.264 (libx264, yuv420p) with the source's timing and
// audio, then verification of the output's frame count.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/media/media_types.h"
#include "common/status.h"

namespace fairy::media {

struct EncodeOptions {
  int crf = 18;  // libx264 constant rate factor, 0..51 (lower = better). Default 18
  std::string preset = "medium";  // libx264 preset: ultrafast .. veryslow. Default "medium"
  // Scale to the source's display size (VideoInfo::display_width/height); otherwise keep the
  // chunks' size. Either way both dimensions are rounded to even numbers. Default true.
  bool scale_to_source = true;
  // Copy the source's audio streams (all of them). A codec the output container cannot hold is
  // re-encoded to AAC (same rate and channels). Default true.
  bool copy_audio = true;
  int threads = 0;  // encoder threads; 0 = auto
};

struct EncodeReport {
  int64_t frames = 0;  // video frames in the output (verified by re-reading it)
  int width = 0;
  int height = 0;
  int audio_streams_copied = 0;     // stream-copied audio streams
  int audio_streams_reencoded = 0;  // re-encoded to AAC
};

// Encodes the frames of `chunks` (in order, contiguous, together exactly the source's frames) to
// `output` (container from the extension: .mp4, .mov, .mkv). Frame i gets the source's frame i
// presentation time (shifted so the first frame is at 0; VFR kept), the stream is tagged with the
// source's frame rate, and the source audio is shifted by the same amount. Written to a temporary
// name and renamed when complete and verified.
// Errors: NotFound/InvalidArgument for missing or bad inputs (named); FailedPrecondition when the
// chunks do not hold exactly the source's frame count or are not contiguous; Internal when the
// verification of the written file fails. Thread-safe (no shared state); uses libx264's threads.
Result<EncodeReport> EncodeFinal(const std::string& source, const std::vector<std::string>& chunks,
                                 const std::string& output, const EncodeOptions& options = {});

// Counts the video frames of `path` by demuxing; FailedPrecondition naming both counts when it is
// not `expected`.
Status VerifyFrameCount(const std::string& path, int64_t expected);

}  // namespace fairy::media
