#include "common/media/chunk.h"

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <utility>

extern "C" {
#include <libavutil/opt.h>
}

#include "common/media/ffmpeg_util.h"
#include "common/media/probe.h"

namespace fairy::media {

namespace {

using internal::AvError;
constexpr const char* kFirstIndexTag = "FAIRY_FIRST_INDEX";

}  // namespace

// ---------------------------------------------------------------------------------------------
// ChunkWriter

struct ChunkWriter::Impl {
  std::string path;
  std::string tmp;
  ChunkWriterOptions options;
  internal::FormatOutputPtr out;
  internal::CodecContextPtr enc;
  internal::FramePtr frame{av_frame_alloc()};
  internal::PacketPtr packet{av_packet_alloc()};
  AVStream* stream = nullptr;
  int64_t written = 0;
  bool finished = false;
  bool failed = false;

  Status Drain() {
    for (;;) {
      int rc = avcodec_receive_packet(enc.get(), packet.get());
      if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return Status::OK();
      if (rc < 0) return Status::Internal(path + ": FFV1 encoding failed (" + AvError(rc) + ")");
      av_packet_rescale_ts(packet.get(), enc->time_base, stream->time_base);
      packet->stream_index = stream->index;
      rc = av_interleaved_write_frame(out.get(), packet.get());
      if (rc < 0) return Status::IOError(tmp + ": write failed (" + AvError(rc) + ")");
    }
  }
};

ChunkWriter::ChunkWriter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ChunkWriter::~ChunkWriter() {
  if (impl_ && !impl_->finished) {
    impl_->out.reset();
    std::error_code ec;
    std::filesystem::remove(impl_->tmp, ec);
  }
}

Result<std::unique_ptr<ChunkWriter>> ChunkWriter::Create(const std::string& path,
                                                         const ChunkWriterOptions& options) {
  internal::InitFFmpeg();
  if (options.width <= 0 || options.height <= 0) {
    return Status::InvalidArgument(path + ": chunk size must be positive, got " +
                                   std::to_string(options.width) + "x" +
                                   std::to_string(options.height));
  }
  if (!options.frame_rate.valid())
    return Status::InvalidArgument(path + ": chunk frame rate must be positive");
  // Owned by the writer from here on, so any failure below removes the temporary file.
  std::unique_ptr<ChunkWriter> writer(new ChunkWriter(std::make_unique<Impl>()));
  Impl* d = writer->impl_.get();
  d->path = path;
  d->tmp = internal::TempPathFor(path);
  d->options = options;
  AVFormatContext* raw = nullptr;
  int rc = avformat_alloc_output_context2(&raw, nullptr, "matroska", d->tmp.c_str());
  if (rc < 0 || raw == nullptr)
    return Status::Internal(path + ": no Matroska muxer (" + AvError(rc) + ")");
  d->out.reset(raw);
  const AVCodec* codec = avcodec_find_encoder(AV_CODEC_ID_FFV1);
  if (codec == nullptr) return Status::Unsupported("this FFmpeg build has no FFV1 encoder");
  d->enc.reset(avcodec_alloc_context3(codec));
  AVCodecContext* enc = d->enc.get();
  enc->width = options.width;
  enc->height = options.height;
  enc->pix_fmt = AV_PIX_FMT_0RGB32;
  enc->time_base = AVRational{static_cast<int>(options.frame_rate.den),
                              static_cast<int>(options.frame_rate.num)};
  enc->framerate = internal::ToAv(options.frame_rate);
  enc->thread_count = options.threads;
  enc->thread_type = FF_THREAD_SLICE;
  enc->gop_size = 1;
  av_opt_set_int(enc->priv_data, "slicecrc", 1, 0);
  enc->level = 3;
  if (d->out->oformat->flags & AVFMT_GLOBALHEADER) enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  rc = avcodec_open2(enc, codec, nullptr);
  if (rc < 0)
    return Status::Internal(path + ": cannot open the FFV1 encoder (" + AvError(rc) + ")");
  d->stream = avformat_new_stream(d->out.get(), nullptr);
  d->stream->time_base = enc->time_base;
  avcodec_parameters_from_context(d->stream->codecpar, enc);
  av_dict_set(&d->out->metadata, kFirstIndexTag, std::to_string(options.first_index).c_str(), 0);
  rc = avio_open(&d->out->pb, d->tmp.c_str(), AVIO_FLAG_WRITE);
  if (rc < 0) return Status::IOError(d->tmp + ": cannot create (" + AvError(rc) + ")");
  rc = avformat_write_header(d->out.get(), nullptr);
  if (rc < 0)
    return Status::IOError(d->tmp + ": cannot write the Matroska header (" + AvError(rc) + ")");
  d->frame->format = AV_PIX_FMT_0RGB32;
  d->frame->width = options.width;
  d->frame->height = options.height;
  rc = av_frame_get_buffer(d->frame.get(), 0);
  if (rc < 0) return Status::Internal(path + ": out of memory for a frame");
  return writer;
}

Status ChunkWriter::Append(const RgbFrame& frame) {
  Impl& d = *impl_;
  if (d.finished) return Status::FailedPrecondition(d.path + ": Append after Finish");
  if (frame.width != d.options.width || frame.height != d.options.height ||
      frame.pixels.size() != static_cast<size_t>(frame.width) * frame.height * 3) {
    return Status::InvalidArgument(
        d.path + ": frame " + std::to_string(frame.index) + " is " + std::to_string(frame.width) +
        "x" + std::to_string(frame.height) + ", the chunk is " + std::to_string(d.options.width) +
        "x" + std::to_string(d.options.height));
  }
  int rc = av_frame_make_writable(d.frame.get());
  if (rc < 0) return Status::Internal(d.path + ": cannot get a writable frame");
  // 0RGB32: one native-endian uint32 per pixel, 0x00RRGGBB (FFV1's 8-bit RGB layout).
  for (int y = 0; y < frame.height; ++y) {
    const uint8_t* src = frame.pixels.data() + static_cast<size_t>(y) * frame.width * 3;
    auto* dst = reinterpret_cast<uint32_t*>(d.frame->data[0] +
                                            static_cast<ptrdiff_t>(y) * d.frame->linesize[0]);
    for (int x = 0; x < frame.width; ++x) {
      dst[x] =
          (uint32_t{src[3 * x]} << 16) | (uint32_t{src[3 * x + 1]} << 8) | uint32_t{src[3 * x + 2]};
    }
  }
  d.frame->pts = d.written;
  rc = avcodec_send_frame(d.enc.get(), d.frame.get());
  if (rc < 0) return Status::Internal(d.path + ": FFV1 encoding failed (" + AvError(rc) + ")");
  FAIRY_RETURN_IF_ERROR(d.Drain());
  ++d.written;
  return Status::OK();
}

Status ChunkWriter::Finish() {
  Impl& d = *impl_;
  if (d.finished) return Status::FailedPrecondition(d.path + ": Finish called twice");
  if (d.written == 0) {
    // Matroska cannot represent an empty video track readably; an empty chunk is a caller's bug.
    return Status::FailedPrecondition(d.path + ": no frames were appended to the chunk");
  }
  int rc = avcodec_send_frame(d.enc.get(), nullptr);
  if (rc < 0 && rc != AVERROR_EOF)
    return Status::Internal(d.path + ": FFV1 flush failed (" + AvError(rc) + ")");
  FAIRY_RETURN_IF_ERROR(d.Drain());
  rc = av_write_trailer(d.out.get());
  if (rc < 0) return Status::IOError(d.tmp + ": cannot finish the file (" + AvError(rc) + ")");
  d.out.reset();  // closes the file
  FAIRY_RETURN_IF_ERROR(internal::RenameInto(d.tmp, d.path));
  d.finished = true;
  return Status::OK();
}

int64_t ChunkWriter::frames_written() const { return impl_->written; }

// ---------------------------------------------------------------------------------------------
// ChunkReader

struct ChunkReader::Impl {
  std::string path;
  internal::FormatInputPtr fmt;
  internal::CodecContextPtr dec;
  internal::PacketPtr packet{av_packet_alloc()};
  internal::FramePtr frame{av_frame_alloc()};
  int stream = -1;
  int width = 0, height = 0;
  int64_t first_index = 0;
  int64_t frame_count = 0;
  int64_t position = 0;
  bool demux_eof = false;
};

ChunkReader::ChunkReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ChunkReader::~ChunkReader() = default;

Result<std::unique_ptr<ChunkReader>> ChunkReader::Open(const std::string& path) {
  FAIRY_ASSIGN_OR_RETURN(VideoInfo info, Probe(path));
  if (info.codec != "ffv1" || info.container.find("matroska") == std::string::npos) {
    return Status::InvalidArgument(path + ": not a chunk (expected FFV1 in Matroska, found " +
                                   info.codec + " in " + info.container + ")");
  }
  auto d = std::make_unique<Impl>();
  d->path = path;
  FAIRY_ASSIGN_OR_RETURN(d->fmt, internal::OpenInput(path));
  d->stream = info.stream_index;
  FAIRY_ASSIGN_OR_RETURN(d->dec, internal::OpenDecoder(path, d->fmt.get(), d->stream, 0));
  d->width = info.width;
  d->height = info.height;
  d->frame_count = info.frame_count;
  if (const AVDictionaryEntry* e = av_dict_get(d->fmt->metadata, kFirstIndexTag, nullptr, 0)) {
    char* end = nullptr;
    long long v = std::strtoll(e->value, &end, 10);
    if (end == e->value || *end != '\0' || v < 0) {
      return Status::Corruption(path + ": bad " + kFirstIndexTag + " tag '" + e->value + "'");
    }
    d->first_index = v;
  }
  return std::unique_ptr<ChunkReader>(new ChunkReader(std::move(d)));
}

int ChunkReader::width() const { return impl_->width; }
int ChunkReader::height() const { return impl_->height; }
int64_t ChunkReader::first_index() const { return impl_->first_index; }
int64_t ChunkReader::frame_count() const { return impl_->frame_count; }

Result<bool> ChunkReader::Next(RgbFrame* out) {
  Impl& d = *impl_;
  for (;;) {
    int rc = avcodec_receive_frame(d.dec.get(), d.frame.get());
    if (rc == 0) break;
    if (rc == AVERROR_EOF) {
      if (d.position < d.frame_count) {
        return Status::Corruption(d.path + ": chunk ended after " + std::to_string(d.position) +
                                  " of " + std::to_string(d.frame_count) + " frames");
      }
      return false;
    }
    if (rc != AVERROR(EAGAIN)) {
      return Status::Corruption(d.path + ": FFV1 decoding failed at frame " +
                                std::to_string(d.position) + " (" + AvError(rc) + ")");
    }
    rc = d.demux_eof ? AVERROR_EOF : av_read_frame(d.fmt.get(), d.packet.get());
    if (rc < 0) {
      d.demux_eof = true;
      avcodec_send_packet(d.dec.get(), nullptr);
      continue;
    }
    if (d.packet->stream_index == d.stream) {
      rc = avcodec_send_packet(d.dec.get(), d.packet.get());
      if (rc < 0 && rc != AVERROR(EAGAIN)) {
        av_packet_unref(d.packet.get());
        return Status::Corruption(d.path + ": damaged FFV1 packet at frame " +
                                  std::to_string(d.position) + " (" + AvError(rc) + ")");
      }
    }
    av_packet_unref(d.packet.get());
  }
  const AVFrame* f = d.frame.get();
  if (f->decode_error_flags != 0 || (f->flags & AV_FRAME_FLAG_CORRUPT)) {
    // FFV1's slice CRCs found damage: a chunk is only useful when bit exact.
    return Status::Corruption(d.path + ": frame " + std::to_string(d.position) +
                              " failed its checksum (damaged chunk)");
  }
  if (f->format != AV_PIX_FMT_0RGB32 || f->width != d.width || f->height != d.height) {
    return Status::Corruption(d.path + ": frame " + std::to_string(d.position) + " is not " +
                              std::to_string(d.width) + "x" + std::to_string(d.height) +
                              " 8-bit RGB");
  }
  out->width = d.width;
  out->height = d.height;
  out->pixels.resize(static_cast<size_t>(d.width) * d.height * 3);
  for (int y = 0; y < d.height; ++y) {
    uint8_t* dst = out->pixels.data() + static_cast<size_t>(y) * d.width * 3;
    const auto* src =
        reinterpret_cast<const uint32_t*>(f->data[0] + static_cast<ptrdiff_t>(y) * f->linesize[0]);
    for (int x = 0; x < d.width; ++x) {
      dst[3 * x] = static_cast<uint8_t>(src[x] >> 16);
      dst[3 * x + 1] = static_cast<uint8_t>(src[x] >> 8);
      dst[3 * x + 2] = static_cast<uint8_t>(src[x]);
    }
  }
  out->index = d.first_index + d.position;
  out->pts = d.position;
  ++d.position;
  return true;
}

Status ConcatChunks(const std::vector<std::string>& chunks, const std::string& output) {
  if (chunks.empty()) return Status::InvalidArgument(output + ": no chunks to concatenate");
  std::unique_ptr<ChunkWriter> writer;
  RgbFrame frame;
  for (const std::string& path : chunks) {
    FAIRY_ASSIGN_OR_RETURN(std::unique_ptr<ChunkReader> reader, ChunkReader::Open(path));
    if (!writer) {
      ChunkWriterOptions o;
      o.width = reader->width();
      o.height = reader->height();
      o.first_index = reader->first_index();
      FAIRY_ASSIGN_OR_RETURN(writer, ChunkWriter::Create(output, o));
    } else if (reader->width() != frame.width || reader->height() != frame.height) {
      return Status::InvalidArgument(path + ": chunk is " + std::to_string(reader->width()) + "x" +
                                     std::to_string(reader->height()) + ", earlier chunks are " +
                                     std::to_string(frame.width) + "x" +
                                     std::to_string(frame.height));
    }
    for (;;) {
      FAIRY_ASSIGN_OR_RETURN(bool got, reader->Next(&frame));
      if (!got) break;
      FAIRY_RETURN_IF_ERROR(writer->Append(frame));
    }
    frame.width = reader->width();
    frame.height = reader->height();
  }
  return writer->Finish();
}

}  // namespace fairy::media
