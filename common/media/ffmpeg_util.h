// Internal helpers of fairy_media around the FFmpeg C API: owning pointers, error text, setup.
// Not part of the public API; include only from common/media/*.cpp.
#pragma once

#include <memory>
#include <string>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/avutil.h>
#include <libswscale/swscale.h>
}

#include "common/media/media_types.h"
#include "common/status.h"

namespace fairy::media::internal {

struct FormatInputDeleter {
  void operator()(AVFormatContext* ctx) const { avformat_close_input(&ctx); }
};
struct CodecContextDeleter {
  void operator()(AVCodecContext* ctx) const { avcodec_free_context(&ctx); }
};
struct FrameDeleter {
  void operator()(AVFrame* frame) const { av_frame_free(&frame); }
};
struct PacketDeleter {
  void operator()(AVPacket* packet) const { av_packet_free(&packet); }
};
struct SwsDeleter {
  void operator()(SwsContext* ctx) const { sws_freeContext(ctx); }
};
// An output format context: closes the AVIO (when opened) and frees the context.
struct FormatOutputDeleter {
  void operator()(AVFormatContext* ctx) const;
};

using FormatInputPtr = std::unique_ptr<AVFormatContext, FormatInputDeleter>;
using FormatOutputPtr = std::unique_ptr<AVFormatContext, FormatOutputDeleter>;
using CodecContextPtr = std::unique_ptr<AVCodecContext, CodecContextDeleter>;
using FramePtr = std::unique_ptr<AVFrame, FrameDeleter>;
using PacketPtr = std::unique_ptr<AVPacket, PacketDeleter>;
using SwsPtr = std::unique_ptr<SwsContext, SwsDeleter>;

// FFmpeg's text for an AVERROR code.
std::string AvError(int code);
// Lowers FFmpeg's own logging to errors (FAIRY_FFMPEG_LOG=debug|info|warning keeps more).
// Idempotent.
void InitFFmpeg();

inline Rational FromAv(AVRational r) { return Rational{r.num, r.den}; }
inline AVRational ToAv(Rational r) {
  return AVRational{static_cast<int>(r.num), static_cast<int>(r.den)};
}

// Opens `path` for demuxing and reads stream info. NotFound when the file is missing,
// InvalidArgument when FFmpeg cannot read it; the message starts with the path.
Result<FormatInputPtr> OpenInput(const std::string& path);
// Opens a decoder for stream `stream_index` of `fmt`. threads: 0 = auto.
Result<CodecContextPtr> OpenDecoder(const std::string& path, AVFormatContext* fmt, int stream_index,
                                    int threads);
// A temporary name beside `path`: "PATH.tmp-<pid>-<random>".
std::string TempPathFor(const std::string& path);
// fsync(tmp), rename(tmp, path), fsync(the folder): the file is complete on disk before it
// becomes visible, and stays visible after a crash. IOError naming the files on failure.
Status RenameInto(const std::string& tmp, const std::string& path);

}  // namespace fairy::media::internal
