// Plain value types of the media layer (fairy_media): rationals, probe results, RGB frames.
//
// Frame indices everywhere in fairy::media are 0-based indices of the frames the decoder outputs
// for the first video stream, in presentation order, counted from the first frame the decoder
// outputs (independent of start_time). A range [first, last) is end-exclusive.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fairy::media {

// A rational number num/den as FFmpeg stores rates and time bases. {0, 1} means "unknown".
struct Rational {
  int64_t num = 0;
  int64_t den = 1;

  bool valid() const { return num > 0 && den > 0; }
  double ToDouble() const {
    return den == 0 ? 0.0 : static_cast<double>(num) / static_cast<double>(den);
  }
  // "30000/1001"; "0/1" when unknown.
  std::string ToString() const;
  bool operator==(const Rational& other) const = default;
};

struct AudioStreamInfo {
  int stream_index = -1;  // index of the stream in the container
  std::string codec;      // FFmpeg codec name: "aac", "opus", "pcm_s16le"
  int sample_rate = 0;    // Hz
  int channels = 0;
  double start_time_s = 0.0;  // 0 when the container gives none
};

// What Probe() learns about a file. Sizes are in pixels.
struct VideoInfo {
  std::string path;
  std::string container;  // FFmpeg demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"
  int stream_index = -1;  // container index of the first video stream (attached pictures skipped)
  std::string codec;      // FFmpeg codec name: "h264", "vp9", "mpeg2video", "dvvideo", ...
  int width = 0;          // stored (coded) frame size, before SAR and rotation
  int height = 0;
  Rational sar;  // sample aspect ratio; {0,1} when the file stores none (treat as 1:1)
  // Display-matrix rotation in degrees exactly as ffprobe prints it: the counter-clockwise angle
  // of the matrix, in (-180, 180]. The picture must be turned (-rotation_deg) mod 360 degrees
  // clockwise for display (-90: portrait; -180/180: upside down). 0 = none.
  int rotation_deg = 0;
  // Size in display orientation with square pixels: width scaled by SAR (rounded to an integer),
  // then width/height swapped when the rotation is +-90.
  int display_width = 0;
  int display_height = 0;
  // Orientation only (no SAR): width/height swapped when the rotation is +-90.
  int oriented_width = 0;
  int oriented_height = 0;
  Rational r_frame_rate;    // FFmpeg's "real base frame rate" (nominal; can be huge for VFR phones)
  Rational avg_frame_rate;  // FFmpeg's average frame rate
  // The rate to report and encode at: avg_frame_rate when valid, else r_frame_rate.
  Rational frame_rate;
  // The stream header says interlaced; false when it does not say (raw DV). FrameReader looks at
  // every frame's own flag, so this is informational.
  bool interlaced = false;
  // Exact number of decoded frames. Counted by demuxing every packet of the stream (packets
  // flagged as discarded by an edit list excluded; decoded when packets lack timestamps) unless
  // ProbeOptions::count_frames is false, in which case it is the header's count (0 when none).
  int64_t frame_count = 0;
  bool frame_count_exact = false;  // true when counted
  Rational time_base;              // of the video stream; frame_pts values are in it
  // Presentation timestamps of every frame in presentation order (time_base units), filled when
  // counted. A frame without a timestamp gets the previous one plus the nominal frame duration.
  std::vector<int64_t> frame_pts;
  double start_time_s = 0.0;  // first frame's PTS in seconds (e.g. 1.075 for an edit list)
  // Duration of the video: last PTS - first PTS + one frame duration when counted, else the
  // stream/container header value; <= 0 when unknown.
  double duration_s = 0.0;
  double container_duration_s = 0.0;  // 0 when the container gives none
  std::vector<AudioStreamInfo> audio;

  bool vfr() const;  // true when frame_pts steps differ by more than one tick
};

// One decoded picture, packed RGB24: pixels.size() == width * height * 3, row-major, no padding.
struct RgbFrame {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;  // H x W x 3, R G B
  int64_t index = -1;           // decoded-frame index in the source (see top of file)
  int64_t pts = 0;              // presentation timestamp in the source stream's time_base
};

}  // namespace fairy::media
