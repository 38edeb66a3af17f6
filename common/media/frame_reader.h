// Frame-accurate streaming decode of a range of decoded-frame indices to packed RGB24.
//
// Usage:
//   FAIRY_ASSIGN_OR_RETURN(auto reader, FrameReader::Open(path, {.long_side = 512, .multiple_of =
//   8})); FAIRY_RETURN_IF_ERROR(reader->Seek(first)); RgbFrame frame; while (reader->index() <
//   last) { FAIRY_ASSIGN_OR_RETURN(bool got, reader->Next(&frame)); ... }
// or DecodeRange(path, options, first, last, callback). Only one frame is held at a time.
//
// Guarantees: the frame with index i is bit-identical whichever range or seek reached it (same
// options, same machine). Frames come out in display orientation (rotation applied), with square
// pixels (SAR applied) unless DecodeOptions says otherwise, converted with the source's colour
// matrix and range (unspecified: BT.709 for height >= 720, else BT.601; limited range unless the
// stream says full) to full-range RGB.
// Interlaced frames are deinterlaced per frame: the temporally first field is scaled to the full
// output height (intra-frame, so any range gives the same pixels as a full decode).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/media/media_types.h"
#include "common/status.h"

namespace fairy::media {

struct DecodeOptions {
  // Output size. Precedence: width and height both > 0: exactly that size (aspect not kept).
  // Only one > 0: that side, the other from the display aspect. long_side > 0: the longer display
  // side becomes long_side, aspect kept. Otherwise the display size (VideoInfo::display_width/
  // height, or oriented_width/height when apply_sar is false). Default: display size.
  int width = 0;
  int height = 0;
  int long_side = 0;
  // Round each output dimension to the nearest multiple of this (at least one multiple). 1 = off;
  // the engine uses 8. Default 1.
  int multiple_of = 1;
  // Stretch non-square pixels to square ones (display aspect). Default true.
  bool apply_sar = true;
  // Turn frames to display orientation per the display matrix. Default true.
  bool apply_rotation = true;
  // Deinterlace frames flagged interlaced (see top of file). Default true.
  bool deinterlace = true;
  // swscale filter: true = bicubic (quality; default), false = fast bilinear (shot detection).
  bool high_quality_scaling = true;
  // Convert exactly like OpenCV's FFmpeg capture (what PySceneDetect's default backend reads), for
  // shot detection: swscale at the decoder's coded size to BGR24 with SWS_BICUBIC and swscale's
  // default matrix (BT.601, limited range unless the format is yuvj), whatever the stream's colour
  // tags say; no SAR, no deinterlacing, no scaling. Rotation still follows apply_rotation (OpenCV's
  // CAP_PROP_ORIENTATION_AUTO). REQUIRES: width, height, long_side 0, multiple_of 1, apply_sar
  // false. Default false.
  bool opencv_conversion = false;
  // Decoder threads; 0 = one per core. Default 0.
  int threads = 0;
  // Decode frame i + 1 on a helper thread while frame i is converted to RGB (and while the
  // caller works on it). Output is identical either way. Default true.
  bool decode_ahead = true;
};

// Computes the output size for a source of display size (dw, dh) [already oriented and with SAR
// applied as the options ask]. Pure; exposed for the planner and tests. Result >= 1 x 1.
void ComputeOutputSize(int display_width, int display_height, const DecodeOptions& options,
                       int* out_width, int* out_height);

// Owns its FFmpeg contexts. Not thread-safe: one thread uses a reader; separate readers (even of
// the same file) are independent.
class FrameReader {
 public:
  // Opens `path` and probes it (with frame counting: needed for exact seeking). Pass `info` from an
  // earlier Probe(count_frames = true) of the same file to skip that pass.
  // Errors as Probe(); InvalidArgument for bad options (negative sizes, multiple_of < 1).
  static Result<std::unique_ptr<FrameReader>> Open(const std::string& path,
                                                   const DecodeOptions& options = {},
                                                   const VideoInfo* info = nullptr);
  ~FrameReader();
  FrameReader(const FrameReader&) = delete;
  FrameReader& operator=(const FrameReader&) = delete;

  const VideoInfo& info() const;
  int output_width() const;
  int output_height() const;
  // Index of the frame the next Next() returns.
  int64_t index() const;
  // The video stream's start_time as the demuxer states it (time_base units); this can differ
  // from the first frame's timestamp (MXF: 0 versus one frame). The first frame's timestamp when
  // the demuxer gives none.
  int64_t stream_start_pts() const;

  // Positions the reader so that the next Next() returns frame `index` (0 <= index <= frame_count).
  // Seeks to the nearest earlier keyframe and decodes forward; falls back to decoding from the
  // start when the container's seeking is imprecise. InvalidArgument when out of range.
  Status Seek(int64_t index);

  // Decodes the next frame into *frame (its buffer is reused). Returns false at the end of the
  // stream. Corruption (with the path and frame index) when the file ends or breaks before the
  // frame count Probe found.
  Result<bool> Next(RgbFrame* frame);

 private:
  struct Impl;
  explicit FrameReader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Decodes [first, last) of `path` and calls `callback` once per frame, in order. The callback may
// return a failed Status to stop; it is passed through. InvalidArgument when the range is empty or
// outside [0, frame_count].
Status DecodeRange(const std::string& path, const DecodeOptions& options, int64_t first,
                   int64_t last, const std::function<Status(const RgbFrame&)>& callback,
                   const VideoInfo* info = nullptr);

}  // namespace fairy::media
