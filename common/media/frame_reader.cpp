#include "common/media/frame_reader.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <future>
#include <utility>

extern "C" {
#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>
}

#include "common/log.h"
#include "common/media/ffmpeg_util.h"
#include "common/media/probe.h"

namespace fairy::media {

namespace {

using internal::AvError;

int RoundToMultiple(double v, int m) {
  long n = std::lround(v / m);
  return static_cast<int>(std::max<long>(1, n) * m);
}

// Clockwise quarter turns needed for display, from the display-matrix angle.
int ClockwiseTurns(int rotation_deg) {
  int cw = ((-rotation_deg) % 360 + 360) % 360;
  return ((cw + 45) / 90) % 4;
}

int SwsColorspace(AVColorSpace cs, int height) {
  switch (cs) {
    case AVCOL_SPC_BT709:
      return SWS_CS_ITU709;
    case AVCOL_SPC_FCC:
      return SWS_CS_FCC;
    case AVCOL_SPC_BT470BG:
    case AVCOL_SPC_SMPTE170M:
      return SWS_CS_ITU601;
    case AVCOL_SPC_SMPTE240M:
      return SWS_CS_SMPTE240M;
    case AVCOL_SPC_BT2020_NCL:
    case AVCOL_SPC_BT2020_CL:
      return SWS_CS_BT2020;
    default:
      return height >= 720 ? SWS_CS_ITU709 : SWS_CS_ITU601;
  }
}

bool IsFullRange(const AVFrame* f) {
  switch (f->format) {
    case AV_PIX_FMT_YUVJ420P:
    case AV_PIX_FMT_YUVJ422P:
    case AV_PIX_FMT_YUVJ444P:
    case AV_PIX_FMT_YUVJ440P:
    case AV_PIX_FMT_YUVJ411P:
      return true;
    default:
      return f->color_range == AVCOL_RANGE_JPEG;
  }
}

// Rotates packed RGB24 src (w x h) clockwise by turns*90 degrees into dst.
void RotateRgb(const uint8_t* src, int w, int h, int turns, uint8_t* dst) {
  if (turns == 2) {
    const int64_t n = static_cast<int64_t>(w) * h;
    for (int64_t i = 0; i < n; ++i) std::memcpy(dst + (n - 1 - i) * 3, src + i * 3, 3);
    return;
  }
  // Output is h x w (width h). Clockwise: dst(x' = h-1-y, y' = x). Counter-clockwise: dst(y,
  // w-1-x).
  for (int y = 0; y < h; ++y) {
    const uint8_t* row = src + static_cast<int64_t>(y) * w * 3;
    for (int x = 0; x < w; ++x) {
      int dx = turns == 1 ? h - 1 - y : y;
      int dy = turns == 1 ? x : w - 1 - x;
      std::memcpy(dst + (static_cast<int64_t>(dy) * h + dx) * 3, row + x * 3, 3);
    }
  }
}

}  // namespace

void ComputeOutputSize(int display_width, int display_height, const DecodeOptions& o,
                       int* out_width, int* out_height) {
  const double dw = std::max(1, display_width), dh = std::max(1, display_height);
  double w = dw, h = dh;
  if (o.width > 0 && o.height > 0) {
    w = o.width;
    h = o.height;
  } else if (o.width > 0) {
    w = o.width;
    h = o.width * dh / dw;
  } else if (o.height > 0) {
    h = o.height;
    w = o.height * dw / dh;
  } else if (o.long_side > 0) {
    double s = o.long_side / std::max(dw, dh);
    w = dw * s;
    h = dh * s;
  }
  const int m = std::max(1, o.multiple_of);
  *out_width = RoundToMultiple(w, m);
  *out_height = RoundToMultiple(h, m);
}

struct FrameReader::Impl {
  std::string path;
  DecodeOptions options;
  VideoInfo info;
  internal::FormatInputPtr fmt;
  internal::CodecContextPtr codec;
  internal::PacketPtr packet{av_packet_alloc()};
  internal::FramePtr decoded{av_frame_alloc()};
  internal::SwsPtr sws;
  internal::FramePtr bgr{av_frame_alloc()};  // opencv_conversion: the coded-size BGR24 picture
  std::array<int, 6> sws_key{};    // source parameters `sws`'s colour details were set for
  int out_w = 0, out_h = 0;        // after rotation
  int scaled_w = 0, scaled_h = 0;  // before rotation
  int turns = 0;
  std::vector<uint8_t> rotate_buffer;
  bool demux_eof = false;
  bool decoder_drained = false;
  int64_t next_index = 0;      // index Next() returns next
  int64_t decode_counter = 0;  // index of the next decoded frame when counting from the start
  bool counting_from_start = true;
  int64_t last_assigned = -1;
  bool has_pending = false;  // `decoded` holds frame next_index (left by Seek)
  int64_t mismatch_pts = 0;  // for the error message of a -3 index

  // Decode-ahead: while the caller's thread converts frame i, one helper decodes frame i + 1 into
  // `ahead`. Only the helper touches the demuxer/decoder state while `ahead_job` is running;
  // every other path first waits for it (FinishAhead). Declared last: destroyed (joined) first.
  struct Ahead {
    Status status;
    bool got = false;
    int64_t index = 0;
  };
  internal::FramePtr ahead{av_frame_alloc()};
  std::future<Ahead> ahead_job;

  void StartAhead() {
    ahead_job = std::async(std::launch::async, [this] {
      Ahead a;
      Result<bool> got = DecodeOne(ahead.get(), &a.index);
      if (got.ok())
        a.got = *got;
      else
        a.status = got.status();
      return a;
    });
  }

  // Waits for a running decode-ahead and makes its frame `decoded`. false when none was running.
  bool FinishAhead(Ahead* out) {
    if (!ahead_job.valid()) return false;
    *out = ahead_job.get();
    std::swap(decoded, ahead);
    return true;
  }

  Status OpenStreams() {
    FAIRY_ASSIGN_OR_RETURN(fmt, internal::OpenInput(path));
    for (unsigned i = 0; i < fmt->nb_streams; ++i) {
      if (static_cast<int>(i) != info.stream_index) fmt->streams[i]->discard = AVDISCARD_ALL;
    }
    FAIRY_ASSIGN_OR_RETURN(
        codec, internal::OpenDecoder(path, fmt.get(), info.stream_index, options.threads));
    demux_eof = decoder_drained = has_pending = false;
    next_index = decode_counter = 0;
    counting_from_start = true;
    last_assigned = -1;
    return Status::OK();
  }

  // Decodes the next frame into `target` and assigns its index. false at the end of the stream.
  Result<bool> DecodeOne(AVFrame* target, int64_t* index) {
    for (;;) {
      int rc = avcodec_receive_frame(codec.get(), target);
      if (rc == 0) {
        *index = AssignIndex(target);
        if (*index == -3) {
          const int64_t n = decode_counter - 1;
          return Status::Corruption(
              path + ": decoded frame " + std::to_string(n) + " has timestamp " +
              std::to_string(mismatch_pts) + " but the probe expects " +
              std::to_string(info.frame_pts[n]) +
              " (a damaged or undecodable frame would shift the frame numbering)");
        }
        return true;
      }
      if (rc == AVERROR_EOF) {
        decoder_drained = true;
        return false;
      }
      if (rc != AVERROR(EAGAIN)) {
        return Status::Corruption(path + ": decoding failed near frame " +
                                  std::to_string(decode_counter) + " (" + AvError(rc) + ")");
      }
      if (demux_eof) return false;
      rc = av_read_frame(fmt.get(), packet.get());
      if (rc < 0) {
        demux_eof = true;
        avcodec_send_packet(codec.get(), nullptr);  // drain
        continue;
      }
      if (packet->stream_index == info.stream_index) {
        rc = avcodec_send_packet(codec.get(), packet.get());
        if (rc < 0 && rc != AVERROR(EAGAIN)) {
          // A damaged packet: FFmpeg's CLI skips it too. A missing frame is caught by the count.
          FAIRY_LOG(kWarn, "media")
              << path << ": skipping a damaged video packet (" << AvError(rc) << ")";
        }
      }
      av_packet_unref(packet.get());
    }
  }

  // From the start, frames are numbered in output order (the definition of an index). After a
  // seek, the index comes from the frame's timestamp in the probe's list; -2 when it has none or
  // an unknown one (some demuxers, e.g. MXF, lose timestamps after a seek).
  int64_t AssignIndex(const AVFrame* f) {
    int64_t idx = -2;
    if (counting_from_start) {
      idx = decode_counter;
      // A frame the decoder dropped (damaged packet) would shift every later index silently;
      // the frame's own timestamp against the probe's list catches that.
      if (f->pts != AV_NOPTS_VALUE && idx < static_cast<int64_t>(info.frame_pts.size()) &&
          f->pts != info.frame_pts[idx]) {
        ++decode_counter;
        mismatch_pts = f->pts;
        return -3;
      }
    } else {
      // The frame's own timestamp, never FFmpeg's guess: a guessed one can be consistent and wrong.
      const int64_t pts = f->pts;
      if (pts != AV_NOPTS_VALUE && !info.frame_pts.empty()) {
        auto it = std::lower_bound(info.frame_pts.begin(), info.frame_pts.end(), pts);
        if (it != info.frame_pts.end() && *it == pts) idx = it - info.frame_pts.begin();
      }
      if (last_assigned >= 0 && idx != last_assigned + 1) idx = -2;
    }
    ++decode_counter;
    if (idx >= 0) last_assigned = idx;
    return idx;
  }

  // OpenCV's CvCapture_FFMPEG::retrieveFrame: the whole coded picture to BGR24 (buffer aligned to
  // 32 like av_frame_get_buffer there), then the stored size cropped out. The conversion path
  // inside swscale (its unscaled YUV->RGB converters, dithering) depends on these exact arguments.
  Status ConvertLikeOpenCV(const AVFrame* f, int64_t index, RgbFrame* out) {
    const auto src_fmt = static_cast<AVPixelFormat>(f->format);
    const int coded_w = codec->coded_width > 0 ? codec->coded_width : f->width;
    const int coded_h = codec->coded_height > 0 ? codec->coded_height : f->height;
    SwsContext* ctx =
        sws_getCachedContext(sws.release(), coded_w, coded_h, src_fmt, coded_w, coded_h,
                             AV_PIX_FMT_BGR24, SWS_BICUBIC, nullptr, nullptr, nullptr);
    sws.reset(ctx);
    if (ctx == nullptr) {
      return Status::Unsupported(
          path + ": cannot convert " +
          std::string(av_get_pix_fmt_name(src_fmt) ? av_get_pix_fmt_name(src_fmt) : "?") +
          " frames to BGR");
    }
    if (bgr->width != coded_w || bgr->height != coded_h) {
      av_frame_unref(bgr.get());
      bgr->format = AV_PIX_FMT_BGR24;
      bgr->width = coded_w;
      bgr->height = coded_h;
      if (av_frame_get_buffer(bgr.get(), 32) < 0) return Status::Internal(path + ": out of memory");
    }
    if (sws_scale(ctx, f->data, f->linesize, 0, f->height, bgr->data, bgr->linesize) <= 0)
      return Status::Internal(path + ": swscale failed on frame " + std::to_string(index));
    const int w = std::min(scaled_w, coded_w), h = std::min(scaled_h, coded_h);
    const size_t bytes = static_cast<size_t>(out_w) * out_h * 3;
    out->width = out_w;
    out->height = out_h;
    out->pixels.assign(bytes, 0);
    uint8_t* target = out->pixels.data();
    if (turns != 0) {
      rotate_buffer.assign(bytes, 0);
      target = rotate_buffer.data();
    }
    for (int y = 0; y < h; ++y) {
      const uint8_t* s = bgr->data[0] + static_cast<int64_t>(y) * bgr->linesize[0];
      uint8_t* d = target + static_cast<int64_t>(y) * scaled_w * 3;
      for (int x = 0; x < w; ++x) {
        d[3 * x] = s[3 * x + 2];
        d[3 * x + 1] = s[3 * x + 1];
        d[3 * x + 2] = s[3 * x];
      }
    }
    if (turns != 0) RotateRgb(rotate_buffer.data(), scaled_w, scaled_h, turns, out->pixels.data());
    out->index = index;
    out->pts = index < static_cast<int64_t>(info.frame_pts.size()) ? info.frame_pts[index]
               : f->best_effort_timestamp != AV_NOPTS_VALUE        ? f->best_effort_timestamp
                                                                   : 0;
    return Status::OK();
  }

  Status Convert(const AVFrame* f, int64_t index, RgbFrame* out) {
    if (options.opencv_conversion) return ConvertLikeOpenCV(f, index, out);
    const bool field = options.deinterlace && f->interlaced_frame && f->height >= 2;
    // Temporally first field: top (even lines) for TFF, bottom (odd lines) for BFF.
    const int offset = field && !f->top_field_first ? 1 : 0;
    const int src_h = field ? (f->height - offset + 1) / 2 : f->height;
    const auto src_fmt = static_cast<AVPixelFormat>(f->format);
    const int flags = options.high_quality_scaling
                          ? (SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT)
                          : SWS_FAST_BILINEAR;
    SwsContext* ctx =
        sws_getCachedContext(sws.release(), f->width, src_h, src_fmt, scaled_w, scaled_h,
                             AV_PIX_FMT_RGB24, flags, nullptr, nullptr, nullptr);
    sws.reset(ctx);
    if (ctx == nullptr) {
      return Status::Unsupported(
          path + ": cannot convert " +
          std::string(av_get_pix_fmt_name(src_fmt) ? av_get_pix_fmt_name(src_fmt) : "?") +
          " frames to RGB");
    }
    const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(src_fmt);
    if (desc != nullptr && !(desc->flags & AV_PIX_FMT_FLAG_RGB)) {
      // Setting the matrix rebuilds swscale's tables: only when the source changed.
      const std::array<int, 6> key = {
          f->width,      src_h, f->format, flags, SwsColorspace(f->colorspace, f->height),
          IsFullRange(f)};
      if (key != sws_key) {
        sws_setColorspaceDetails(ctx, sws_getCoefficients(key[4]), key[5],
                                 sws_getCoefficients(SWS_CS_DEFAULT), 1, 0, 1 << 16, 1 << 16);
        sws_key = key;
      }
    }
    const uint8_t* src[4] = {nullptr, nullptr, nullptr, nullptr};
    int src_stride[4] = {0, 0, 0, 0};
    for (int p = 0; p < 4 && f->data[p] != nullptr; ++p) {
      src[p] = f->data[p] + (field ? offset * f->linesize[p] : 0);
      src_stride[p] = field ? 2 * f->linesize[p] : f->linesize[p];
    }
    const size_t bytes = static_cast<size_t>(out_w) * out_h * 3;
    out->width = out_w;
    out->height = out_h;
    out->pixels.resize(bytes);
    uint8_t* target = out->pixels.data();
    if (turns != 0) {
      rotate_buffer.resize(bytes);
      target = rotate_buffer.data();
    }
    uint8_t* dst[4] = {target, nullptr, nullptr, nullptr};
    int dst_stride[4] = {scaled_w * 3, 0, 0, 0};
    int rc = sws_scale(ctx, src, src_stride, 0, src_h, dst, dst_stride);
    if (rc <= 0)
      return Status::Internal(path + ": swscale failed on frame " + std::to_string(index));
    if (turns != 0) RotateRgb(rotate_buffer.data(), scaled_w, scaled_h, turns, out->pixels.data());
    out->index = index;
    out->pts = index < static_cast<int64_t>(info.frame_pts.size()) ? info.frame_pts[index]
               : f->best_effort_timestamp != AV_NOPTS_VALUE        ? f->best_effort_timestamp
                                                                   : 0;
    return Status::OK();
  }

  // Decodes from the current position until frame `target` is in `decoded`.
  Status DecodeUntil(int64_t target) {
    for (;;) {
      int64_t idx = 0;
      FAIRY_ASSIGN_OR_RETURN(bool got, DecodeOne(decoded.get(), &idx));
      if (!got) {
        if (!counting_from_start) return Status::FailedPrecondition("end of stream after a seek");
        return Status::Corruption(path + ": the stream ended before frame " +
                                  std::to_string(target) + " (probe counted " +
                                  std::to_string(info.frame_count) + ")");
      }
      if (idx == target) {
        has_pending = true;
        return Status::OK();
      }
      if (idx == -2) return Status::Unsupported("no usable timestamps after the seek");
      if (idx > target) return Status::FailedPrecondition("overshot");
    }
  }

  Status SeekTo(int64_t target) {
    Ahead a;
    if (FinishAhead(&a)) {
      // The frame decoded ahead is frame next_index: keep it as the pending frame.
      has_pending = a.status.ok() && a.got && a.index == next_index;
      if (!a.status.ok() || (a.got && a.index != next_index)) return RestartAt(target);
    }
    if (target == next_index) return Status::OK();
    if (has_pending && target > next_index) {
      has_pending = false;  // skip the pending frame: the decoder is one past it
      ++next_index;
      if (target == next_index) return Status::OK();  // the decoder stands at the target
    }
    // Forward and close: decoding on is cheaper than a seek.
    if (target > next_index && target - next_index <= 32 && !has_pending) {
      Status s = DecodeUntil(target);
      if (s.ok()) {
        next_index = target;
        return s;
      }
    }
    has_pending = false;
    if (target > 0 && info.frame_pts.size() == static_cast<size_t>(info.frame_count)) {
      for (int64_t back : {0, 8, 64, 512}) {
        const int64_t from = std::max<int64_t>(0, target - back);
        if (av_seek_frame(fmt.get(), info.stream_index, info.frame_pts[from],
                          AVSEEK_FLAG_BACKWARD) < 0)
          break;
        avcodec_flush_buffers(codec.get());
        demux_eof = decoder_drained = false;
        counting_from_start = false;
        last_assigned = -1;
        Status s = DecodeUntil(target);
        if (s.ok()) {
          next_index = target;
          return s;
        }
        if (s.code() == Status::Code::kUnsupported) break;
        if (s.code() != Status::Code::kFailedPrecondition) return s;
        has_pending = false;
        if (from == 0) break;
      }
      FAIRY_LOG(kDebug, "media") << path << ": imprecise seek to frame " << target
                                 << "; decoding from the start";
    }
    return RestartAt(target);
  }

  // Reopens the file and decodes from the first frame until frame `target` is pending.
  Status RestartAt(int64_t target) {
    FAIRY_RETURN_IF_ERROR(OpenStreams());
    if (target == 0) return Status::OK();
    Status s = DecodeUntil(target);
    if (!s.ok()) {
      return s.code() == Status::Code::kFailedPrecondition
                 ? Status::Internal(path + ": lost frame " + std::to_string(target))
                 : s;
    }
    next_index = target;
    return Status::OK();
  }
};

FrameReader::FrameReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FrameReader::~FrameReader() = default;

Result<std::unique_ptr<FrameReader>> FrameReader::Open(const std::string& path,
                                                       const DecodeOptions& options,
                                                       const VideoInfo* info) {
  if (options.width < 0 || options.height < 0 || options.long_side < 0 || options.multiple_of < 1 ||
      options.threads < 0) {
    return Status::InvalidArgument(path +
                                   ": bad decode options (sizes must be >= 0, multiple_of >= 1)");
  }
  if (options.opencv_conversion &&
      (options.width != 0 || options.height != 0 || options.long_side != 0 ||
       options.multiple_of != 1 || options.apply_sar)) {
    return Status::InvalidArgument(
        path + ": opencv_conversion decodes at the stored size (no size options, no SAR)");
  }
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->options = options;
  if (info != nullptr) {
    impl->info = *info;
  } else {
    FAIRY_ASSIGN_OR_RETURN(impl->info, Probe(path));
  }
  const VideoInfo& vi = impl->info;
  impl->turns = options.apply_rotation ? ClockwiseTurns(vi.rotation_deg) : 0;
  // Unrotated size (SAR applied when asked), then turned like the frames will be.
  int dw = vi.width, dh = vi.height;
  if (options.apply_sar && vi.sar.valid() && vi.sar.num != vi.sar.den) {
    dw = static_cast<int>(std::lround(vi.width * vi.sar.ToDouble()));
  }
  if (impl->turns % 2 == 1) std::swap(dw, dh);
  ComputeOutputSize(dw, dh, options, &impl->out_w, &impl->out_h);
  const bool swap = impl->turns % 2 == 1;
  impl->scaled_w = swap ? impl->out_h : impl->out_w;
  impl->scaled_h = swap ? impl->out_w : impl->out_h;
  FAIRY_RETURN_IF_ERROR(impl->OpenStreams());
  return std::unique_ptr<FrameReader>(new FrameReader(std::move(impl)));
}

const VideoInfo& FrameReader::info() const { return impl_->info; }
int FrameReader::output_width() const { return impl_->out_w; }
int FrameReader::output_height() const { return impl_->out_h; }
int64_t FrameReader::index() const { return impl_->next_index; }
int64_t FrameReader::stream_start_pts() const {
  const int64_t start = impl_->fmt->streams[impl_->info.stream_index]->start_time;
  if (start != AV_NOPTS_VALUE) return start;
  return impl_->info.frame_pts.empty() ? 0 : impl_->info.frame_pts.front();
}

Status FrameReader::Seek(int64_t index) {
  if (index < 0 || (impl_->info.frame_count > 0 && index > impl_->info.frame_count)) {
    return Status::InvalidArgument(impl_->path + ": frame " + std::to_string(index) +
                                   " is outside [0, " + std::to_string(impl_->info.frame_count) +
                                   "]");
  }
  return impl_->SeekTo(index);
}

Result<bool> FrameReader::Next(RgbFrame* frame) {
  Impl& d = *impl_;
  if (!d.has_pending) {
    int64_t idx = 0;
    bool got = false;
    Impl::Ahead a;
    if (d.FinishAhead(&a)) {
      FAIRY_RETURN_IF_ERROR(a.status);
      got = a.got;
      idx = a.index;
    } else {
      FAIRY_ASSIGN_OR_RETURN(got, d.DecodeOne(d.decoded.get(), &idx));
    }
    if (!got) {
      if (d.info.frame_count_exact && d.next_index < d.info.frame_count) {
        return Status::Corruption(d.path + ": the stream ended after " +
                                  std::to_string(d.next_index) + " frames; probe counted " +
                                  std::to_string(d.info.frame_count));
      }
      return false;
    }
    if (idx != d.next_index) {
      if (d.counting_from_start) {
        return Status::Corruption(d.path + ": expected frame " + std::to_string(d.next_index) +
                                  " but the decoder produced frame " + std::to_string(idx));
      }
      // Timestamps after the seek stopped matching the probe's: decode from the start instead.
      FAIRY_RETURN_IF_ERROR(d.RestartAt(d.next_index));
    }
  }
  d.has_pending = false;
  if (d.options.decode_ahead) d.StartAhead();  // frame next_index + 1, while this one converts
  FAIRY_RETURN_IF_ERROR(d.Convert(d.decoded.get(), d.next_index, frame));
  ++d.next_index;
  return true;
}

Status DecodeRange(const std::string& path, const DecodeOptions& options, int64_t first,
                   int64_t last, const std::function<Status(const RgbFrame&)>& callback,
                   const VideoInfo* info) {
  FAIRY_ASSIGN_OR_RETURN(std::unique_ptr<FrameReader> reader,
                         FrameReader::Open(path, options, info));
  const int64_t n = reader->info().frame_count;
  if (first < 0 || last <= first || last > n) {
    return Status::InvalidArgument(path + ": frame range [" + std::to_string(first) + ", " +
                                   std::to_string(last) + ") is empty or outside [0, " +
                                   std::to_string(n) + ")");
  }
  FAIRY_RETURN_IF_ERROR(reader->Seek(first));
  RgbFrame frame;
  while (reader->index() < last) {
    FAIRY_ASSIGN_OR_RETURN(bool got, reader->Next(&frame));
    if (!got) {
      return Status::Corruption(path + ": the stream ended at frame " +
                                std::to_string(reader->index()) + " before the end of range " +
                                std::to_string(last));
    }
    FAIRY_RETURN_IF_ERROR(callback(frame));
  }
  return Status::OK();
}

}  // namespace fairy::media
