#include "common/media/encoder.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <utility>

extern "C" {
#include <libavutil/audio_fifo.h>
#include <libavutil/opt.h>
#include <libswresample/swresample.h>
}

#include "common/log.h"
#include "common/media/chunk.h"
#include "common/media/ffmpeg_util.h"
#include "common/media/probe.h"

namespace fairy::media {

namespace {

using internal::AvError;

struct SwrDeleter {
  void operator()(SwrContext* s) const { swr_free(&s); }
};
struct FifoDeleter {
  void operator()(AVAudioFifo* f) const { av_audio_fifo_free(f); }
};

// One source audio stream carried into the output: stream copy, or re-encoded to AAC when the
// output container cannot hold the codec. Reads the source with its own demuxer so the caller can
// interleave it with the video by time (WriteUntil).
class AudioTrack {
 public:
  Status Open(const std::string& source, int src_index, double offset_s, AVFormatContext* out) {
    source_ = source;
    out_ = out;
    FAIRY_ASSIGN_OR_RETURN(in_, internal::OpenInput(source));
    for (unsigned i = 0; i < in_->nb_streams; ++i) {
      if (static_cast<int>(i) != src_index) in_->streams[i]->discard = AVDISCARD_ALL;
    }
    src_ = in_->streams[src_index];
    offset_ = av_rescale_q(std::llround(offset_s * 1e6), AVRational{1, 1000000}, src_->time_base);
    const bool copy =
        avformat_query_codec(out->oformat, src_->codecpar->codec_id, FF_COMPLIANCE_NORMAL) == 1;
    stream_ = avformat_new_stream(out, nullptr);
    if (copy) {
      avcodec_parameters_copy(stream_->codecpar, src_->codecpar);
      stream_->codecpar->codec_tag = 0;
      stream_->time_base = src_->time_base;
      reencode_ = false;
      return Status::OK();
    }
    reencode_ = true;
    FAIRY_ASSIGN_OR_RETURN(dec_, internal::OpenDecoder(source, in_.get(), src_index, 1));
    const AVCodec* aac = avcodec_find_encoder(AV_CODEC_ID_AAC);
    if (aac == nullptr) return Status::Unsupported("this FFmpeg build has no AAC encoder");
    enc_.reset(avcodec_alloc_context3(aac));
    enc_->sample_rate = dec_->sample_rate;
    enc_->sample_fmt = AV_SAMPLE_FMT_FLTP;
    av_channel_layout_default(&enc_->ch_layout, std::max(1, dec_->ch_layout.nb_channels));
    enc_->bit_rate = 64000LL * enc_->ch_layout.nb_channels;
    enc_->time_base = AVRational{1, enc_->sample_rate};
    if (out->oformat->flags & AVFMT_GLOBALHEADER) enc_->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    int rc = avcodec_open2(enc_.get(), aac, nullptr);
    if (rc < 0)
      return Status::Internal(source + ": cannot open the AAC encoder (" + AvError(rc) + ")");
    avcodec_parameters_from_context(stream_->codecpar, enc_.get());
    stream_->time_base = enc_->time_base;
    SwrContext* swr = nullptr;
    rc = swr_alloc_set_opts2(&swr, &enc_->ch_layout, AV_SAMPLE_FMT_FLTP, enc_->sample_rate,
                             &dec_->ch_layout, dec_->sample_fmt, dec_->sample_rate, 0, nullptr);
    swr_.reset(swr);
    if (rc < 0 || swr_init(swr) < 0)
      return Status::Internal(source + ": cannot set up audio resampling");
    fifo_.reset(av_audio_fifo_alloc(AV_SAMPLE_FMT_FLTP, enc_->ch_layout.nb_channels, 4096));
    return Status::OK();
  }

  bool reencoded() const { return reencode_; }

  // Writes source packets whose (shifted) time is before `t_s` seconds; all when t_s is infinite.
  Status WriteUntil(double t_s) {
    for (;;) {
      if (!have_pending_) {
        if (eof_) return Status::OK();
        int rc = av_read_frame(in_.get(), pending_.get());
        if (rc < 0) {
          eof_ = true;
          return reencode_ ? Flush() : Status::OK();
        }
        if (pending_->stream_index != src_->index) {
          av_packet_unref(pending_.get());
          continue;
        }
        have_pending_ = true;
      }
      int64_t ts = pending_->pts != AV_NOPTS_VALUE ? pending_->pts : pending_->dts;
      if (ts != AV_NOPTS_VALUE && std::isfinite(t_s) &&
          (ts - offset_) * av_q2d(src_->time_base) > t_s) {
        return Status::OK();
      }
      have_pending_ = false;
      Status s = reencode_ ? Transcode(pending_.get()) : Copy(pending_.get());
      av_packet_unref(pending_.get());
      FAIRY_RETURN_IF_ERROR(s);
    }
  }

 private:
  Status Copy(AVPacket* pkt) {
    if (pkt->pts != AV_NOPTS_VALUE) pkt->pts -= offset_;
    if (pkt->dts != AV_NOPTS_VALUE) pkt->dts -= offset_;
    av_packet_rescale_ts(pkt, src_->time_base, stream_->time_base);
    pkt->stream_index = stream_->index;
    pkt->pos = -1;
    int rc = av_interleaved_write_frame(out_, pkt);
    if (rc < 0)
      return Status::IOError(source_ + ": writing copied audio failed (" + AvError(rc) + ")");
    return Status::OK();
  }

  Status Transcode(AVPacket* pkt) {
    int rc = avcodec_send_packet(dec_.get(), pkt);
    if (rc < 0 && rc != AVERROR(EAGAIN)) {
      FAIRY_LOG(kWarn, "media") << source_ << ": skipping a damaged audio packet (" << AvError(rc)
                                << ")";
      return Status::OK();
    }
    return DrainDecoder();
  }

  Status DrainDecoder() {
    internal::FramePtr frame(av_frame_alloc());
    for (;;) {
      int rc = avcodec_receive_frame(dec_.get(), frame.get());
      if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return Status::OK();
      if (rc < 0)
        return Status::Corruption(source_ + ": audio decoding failed (" + AvError(rc) + ")");
      if (next_sample_ == AV_NOPTS_VALUE) {
        int64_t ts = frame->best_effort_timestamp;
        next_sample_ =
            ts == AV_NOPTS_VALUE ? 0 : av_rescale_q(ts - offset_, src_->time_base, enc_->time_base);
      }
      const int max_out = swr_get_out_samples(swr_.get(), frame->nb_samples);
      internal::FramePtr conv(av_frame_alloc());
      conv->format = AV_SAMPLE_FMT_FLTP;
      av_channel_layout_copy(&conv->ch_layout, &enc_->ch_layout);
      conv->sample_rate = enc_->sample_rate;
      conv->nb_samples = std::max(1, max_out);
      if (av_frame_get_buffer(conv.get(), 0) < 0)
        return Status::Internal("out of memory for audio");
      int n = swr_convert(swr_.get(), conv->data, conv->nb_samples,
                          const_cast<const uint8_t**>(frame->extended_data), frame->nb_samples);
      if (n < 0) return Status::Internal(source_ + ": audio resampling failed");
      av_audio_fifo_write(fifo_.get(), reinterpret_cast<void**>(conv->data), n);
      av_frame_unref(frame.get());
      FAIRY_RETURN_IF_ERROR(EncodeFifo(false));
    }
  }

  Status EncodeFifo(bool final) {
    const int frame_size = enc_->frame_size > 0 ? enc_->frame_size : 1024;
    while (av_audio_fifo_size(fifo_.get()) >= frame_size ||
           (final && av_audio_fifo_size(fifo_.get()) > 0)) {
      const int n = std::min(frame_size, av_audio_fifo_size(fifo_.get()));
      internal::FramePtr f(av_frame_alloc());
      f->format = AV_SAMPLE_FMT_FLTP;
      av_channel_layout_copy(&f->ch_layout, &enc_->ch_layout);
      f->sample_rate = enc_->sample_rate;
      f->nb_samples = n;
      if (av_frame_get_buffer(f.get(), 0) < 0) return Status::Internal("out of memory for audio");
      av_audio_fifo_read(fifo_.get(), reinterpret_cast<void**>(f->data), n);
      f->pts = next_sample_;
      next_sample_ += n;
      int rc = avcodec_send_frame(enc_.get(), f.get());
      if (rc < 0) return Status::Internal(source_ + ": AAC encoding failed (" + AvError(rc) + ")");
      FAIRY_RETURN_IF_ERROR(WriteEncoded());
    }
    return Status::OK();
  }

  Status WriteEncoded() {
    internal::PacketPtr pkt(av_packet_alloc());
    for (;;) {
      int rc = avcodec_receive_packet(enc_.get(), pkt.get());
      if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return Status::OK();
      if (rc < 0) return Status::Internal(source_ + ": AAC encoding failed (" + AvError(rc) + ")");
      av_packet_rescale_ts(pkt.get(), enc_->time_base, stream_->time_base);
      pkt->stream_index = stream_->index;
      rc = av_interleaved_write_frame(out_, pkt.get());
      if (rc < 0)
        return Status::IOError(source_ + ": writing AAC audio failed (" + AvError(rc) + ")");
    }
  }

  Status Flush() {
    avcodec_send_packet(dec_.get(), nullptr);
    FAIRY_RETURN_IF_ERROR(DrainDecoder());
    FAIRY_RETURN_IF_ERROR(EncodeFifo(true));
    avcodec_send_frame(enc_.get(), nullptr);
    return WriteEncoded();
  }

  std::string source_;
  AVFormatContext* out_ = nullptr;
  internal::FormatInputPtr in_;
  AVStream* src_ = nullptr;
  AVStream* stream_ = nullptr;
  int64_t offset_ = 0;  // in src_->time_base
  bool reencode_ = false;
  internal::CodecContextPtr dec_, enc_;
  std::unique_ptr<SwrContext, SwrDeleter> swr_;
  std::unique_ptr<AVAudioFifo, FifoDeleter> fifo_;
  int64_t next_sample_ = AV_NOPTS_VALUE;
  internal::PacketPtr pending_{av_packet_alloc()};
  bool have_pending_ = false;
  bool eof_ = false;
};

int EvenDown(int v) { return std::max(2, v - v % 2); }

}  // namespace

Status VerifyFrameCount(const std::string& path, int64_t expected) {
  FAIRY_ASSIGN_OR_RETURN(VideoInfo info, Probe(path));
  if (info.frame_count != expected) {
    return Status::FailedPrecondition(path + ": has " + std::to_string(info.frame_count) +
                                      " video frames, expected " + std::to_string(expected));
  }
  return Status::OK();
}

Result<EncodeReport> EncodeFinal(const std::string& source, const std::vector<std::string>& chunks,
                                 const std::string& output, const EncodeOptions& options) {
  if (options.crf < 0 || options.crf > 51) {
    return Status::InvalidArgument("encode.crf: must be between 0 and 51, got " +
                                   std::to_string(options.crf));
  }
  if (chunks.empty()) return Status::InvalidArgument(output + ": no chunks to encode");
  FAIRY_ASSIGN_OR_RETURN(VideoInfo src, Probe(source));
  // Check the chunks cover exactly [0, frame_count) in order before writing anything.
  int chunk_w = 0, chunk_h = 0;
  int64_t expect_first = 0;
  for (const std::string& path : chunks) {
    FAIRY_ASSIGN_OR_RETURN(std::unique_ptr<ChunkReader> r, ChunkReader::Open(path));
    if (chunk_w == 0) {
      chunk_w = r->width();
      chunk_h = r->height();
    } else if (r->width() != chunk_w || r->height() != chunk_h) {
      return Status::InvalidArgument(path + ": chunk is " + std::to_string(r->width()) + "x" +
                                     std::to_string(r->height()) + ", the first chunk is " +
                                     std::to_string(chunk_w) + "x" + std::to_string(chunk_h));
    }
    if (r->first_index() != expect_first) {
      return Status::FailedPrecondition(
          path + ": chunk starts at frame " + std::to_string(r->first_index()) + ", expected " +
          std::to_string(expect_first) + " (chunks must be contiguous)");
    }
    expect_first += r->frame_count();
  }
  if (expect_first != src.frame_count) {
    return Status::FailedPrecondition(output + ": the chunks hold " + std::to_string(expect_first) +
                                      " frames but " + source + " has " +
                                      std::to_string(src.frame_count));
  }
  const AVOutputFormat* ofmt = av_guess_format(nullptr, output.c_str(), nullptr);
  if (ofmt == nullptr) {
    return Status::InvalidArgument(output + ": unknown output container (use .mp4, .mov or .mkv)");
  }
  EncodeReport report;
  report.width = EvenDown(options.scale_to_source ? src.display_width : chunk_w);
  report.height = EvenDown(options.scale_to_source ? src.display_height : chunk_h);

  const std::string tmp = internal::TempPathFor(output);
  struct TmpRemover {
    std::string path;
    bool keep = false;
    ~TmpRemover() {
      std::error_code ec;
      if (!keep) std::filesystem::remove(path, ec);
    }
  } remover{tmp};
  internal::FormatOutputPtr out;
  {
    AVFormatContext* raw = nullptr;
    int rc = avformat_alloc_output_context2(&raw, ofmt, nullptr, tmp.c_str());
    if (rc < 0) return Status::Internal(output + ": cannot create the muxer (" + AvError(rc) + ")");
    out.reset(raw);
  }
  const AVCodec* x264 = avcodec_find_encoder_by_name("libx264");
  if (x264 == nullptr) return Status::Unsupported("this FFmpeg build has no libx264 encoder");
  internal::CodecContextPtr enc(avcodec_alloc_context3(x264));
  enc->width = report.width;
  enc->height = report.height;
  enc->pix_fmt = AV_PIX_FMT_YUV420P;
  enc->time_base = internal::ToAv(src.time_base);
  enc->framerate = internal::ToAv(src.frame_rate);
  enc->thread_count = options.threads;
  const bool hd = report.height >= 720;
  enc->colorspace = hd ? AVCOL_SPC_BT709 : AVCOL_SPC_SMPTE170M;
  enc->color_primaries = hd ? AVCOL_PRI_BT709 : AVCOL_PRI_SMPTE170M;
  enc->color_trc = hd ? AVCOL_TRC_BT709 : AVCOL_TRC_SMPTE170M;
  enc->color_range = AVCOL_RANGE_MPEG;
  if (ofmt->flags & AVFMT_GLOBALHEADER) enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  if (av_opt_set(enc->priv_data, "preset", options.preset.c_str(), 0) < 0) {
    return Status::InvalidArgument("encode.preset: unknown libx264 preset '" + options.preset +
                                   "'");
  }
  av_opt_set_double(enc->priv_data, "crf", options.crf, 0);
  int rc = avcodec_open2(enc.get(), x264, nullptr);
  if (rc < 0) {
    return Status::InvalidArgument(output + ": cannot open libx264 with preset '" + options.preset +
                                   "' (" + AvError(rc) + ")");
  }
  AVStream* vst = avformat_new_stream(out.get(), nullptr);
  avcodec_parameters_from_context(vst->codecpar, enc.get());
  vst->time_base = enc->time_base;
  vst->avg_frame_rate = internal::ToAv(src.frame_rate);
  vst->r_frame_rate = internal::ToAv(src.vfr() ? src.r_frame_rate : src.frame_rate);

  const double tb = src.time_base.ToDouble();
  const double video_start_s = src.frame_pts.front() * tb;
  std::vector<std::unique_ptr<AudioTrack>> audio;
  if (options.copy_audio) {
    for (const AudioStreamInfo& a : src.audio) {
      auto track = std::make_unique<AudioTrack>();
      FAIRY_RETURN_IF_ERROR(track->Open(source, a.stream_index, video_start_s, out.get()));
      (track->reencoded() ? report.audio_streams_reencoded : report.audio_streams_copied)++;
      audio.push_back(std::move(track));
    }
  }
  rc = avio_open(&out->pb, tmp.c_str(), AVIO_FLAG_WRITE);
  if (rc < 0) return Status::IOError(tmp + ": cannot create (" + AvError(rc) + ")");
  rc = avformat_write_header(out.get(), nullptr);
  if (rc < 0) return Status::IOError(output + ": cannot write the header (" + AvError(rc) + ")");

  internal::PacketPtr pkt(av_packet_alloc());
  auto drain = [&]() -> Status {
    for (;;) {
      int r = avcodec_receive_packet(enc.get(), pkt.get());
      if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return Status::OK();
      if (r < 0) return Status::Internal(output + ": libx264 failed (" + AvError(r) + ")");
      const double t = pkt->dts * av_q2d(enc->time_base);
      for (auto& track : audio) FAIRY_RETURN_IF_ERROR(track->WriteUntil(t));
      av_packet_rescale_ts(pkt.get(), enc->time_base, vst->time_base);
      pkt->stream_index = vst->index;
      r = av_interleaved_write_frame(out.get(), pkt.get());
      if (r < 0) return Status::IOError(output + ": write failed (" + AvError(r) + ")");
    }
  };

  internal::FramePtr yuv(av_frame_alloc());
  yuv->format = AV_PIX_FMT_YUV420P;
  yuv->width = report.width;
  yuv->height = report.height;
  if (av_frame_get_buffer(yuv.get(), 0) < 0) return Status::Internal("out of memory for a frame");
  internal::SwsPtr sws(sws_getContext(
      chunk_w, chunk_h, AV_PIX_FMT_RGB24, report.width, report.height, AV_PIX_FMT_YUV420P,
      SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INP, nullptr, nullptr, nullptr));
  if (!sws) return Status::Internal("cannot set up RGB to YUV conversion");
  sws_setColorspaceDetails(sws.get(), sws_getCoefficients(SWS_CS_DEFAULT), 1,
                           sws_getCoefficients(hd ? SWS_CS_ITU709 : SWS_CS_ITU601), 0, 0, 1 << 16,
                           1 << 16);
  RgbFrame frame;
  int64_t index = 0;
  for (const std::string& path : chunks) {
    FAIRY_ASSIGN_OR_RETURN(std::unique_ptr<ChunkReader> reader, ChunkReader::Open(path));
    for (;;) {
      FAIRY_ASSIGN_OR_RETURN(bool got, reader->Next(&frame));
      if (!got) break;
      if (av_frame_make_writable(yuv.get()) < 0)
        return Status::Internal("cannot get a writable frame");
      const uint8_t* src_planes[1] = {frame.pixels.data()};
      const int src_stride[1] = {frame.width * 3};
      sws_scale(sws.get(), src_planes, src_stride, 0, frame.height, yuv->data, yuv->linesize);
      yuv->pts = src.frame_pts[index] - src.frame_pts.front();
      rc = avcodec_send_frame(enc.get(), yuv.get());
      if (rc < 0)
        return Status::Internal(output + ": libx264 rejected frame " + std::to_string(index) +
                                " (" + AvError(rc) + ")");
      FAIRY_RETURN_IF_ERROR(drain());
      ++index;
    }
  }
  avcodec_send_frame(enc.get(), nullptr);
  FAIRY_RETURN_IF_ERROR(drain());
  for (auto& track : audio) FAIRY_RETURN_IF_ERROR(track->WriteUntil(INFINITY));
  rc = av_write_trailer(out.get());
  if (rc < 0) return Status::IOError(output + ": cannot finish the file (" + AvError(rc) + ")");
  out.reset();
  Status verified = VerifyFrameCount(tmp, index);
  if (!verified.ok())
    return Status::Internal("verification of the encoded output failed: " + verified.message());
  FAIRY_RETURN_IF_ERROR(internal::RenameInto(tmp, output));
  remover.keep = true;
  report.frames = index;
  return report;
}

}  // namespace fairy::media
