#include "common/media/ffmpeg_util.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <random>
#include <string_view>

namespace fairy::media::internal {

void FormatOutputDeleter::operator()(AVFormatContext* ctx) const {
  if (ctx == nullptr) return;
  if (ctx->oformat != nullptr && !(ctx->oformat->flags & AVFMT_NOFILE) && ctx->pb != nullptr) {
    avio_closep(&ctx->pb);
  }
  avformat_free_context(ctx);
}

std::string AvError(int code) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
  av_strerror(code, buf, sizeof(buf));
  return buf;
}

void InitFFmpeg() {
  static std::once_flag once;
  std::call_once(once, [] {
    int level = AV_LOG_ERROR;
    if (const char* env = std::getenv("FAIRY_FFMPEG_LOG")) {
      std::string_view v(env);
      if (v == "debug")
        level = AV_LOG_DEBUG;
      else if (v == "info")
        level = AV_LOG_INFO;
      else if (v == "warning")
        level = AV_LOG_WARNING;
      else if (v == "quiet")
        level = AV_LOG_QUIET;
    }
    av_log_set_level(level);
  });
}

Result<FormatInputPtr> OpenInput(const std::string& path) {
  InitFFmpeg();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return Status::NotFound(path + ": no such file");
  if (std::filesystem::is_directory(path, ec)) {
    return Status::InvalidArgument(path + ": is a directory, not a video file");
  }
  AVFormatContext* raw = nullptr;
  int rc = avformat_open_input(&raw, path.c_str(), nullptr, nullptr);
  if (rc < 0) {
    return Status::InvalidArgument(path + ": not a media file FFmpeg can read (" + AvError(rc) +
                                   ")");
  }
  FormatInputPtr fmt(raw);
  rc = avformat_find_stream_info(fmt.get(), nullptr);
  if (rc < 0) {
    return Status::Corruption(path + ": cannot read stream information (" + AvError(rc) + ")");
  }
  return fmt;
}

Result<CodecContextPtr> OpenDecoder(const std::string& path, AVFormatContext* fmt, int stream_index,
                                    int threads) {
  AVStream* st = fmt->streams[stream_index];
  const AVCodec* codec = avcodec_find_decoder(st->codecpar->codec_id);
  if (codec == nullptr) {
    return Status::Unsupported(path + ": stream #" + std::to_string(stream_index) +
                               ": no decoder for codec '" +
                               avcodec_get_name(st->codecpar->codec_id) + "' in this FFmpeg build");
  }
  CodecContextPtr ctx(avcodec_alloc_context3(codec));
  if (!ctx) return Status::Internal(path + ": out of memory allocating a decoder");
  int rc = avcodec_parameters_to_context(ctx.get(), st->codecpar);
  if (rc < 0) return Status::Corruption(path + ": bad codec parameters (" + AvError(rc) + ")");
  ctx->pkt_timebase = st->time_base;
  ctx->thread_count = threads;
  ctx->thread_type = FF_THREAD_FRAME | FF_THREAD_SLICE;
  rc = avcodec_open2(ctx.get(), codec, nullptr);
  if (rc < 0) {
    return Status::Corruption(path + ": cannot open the " + codec->name + " decoder (" +
                              AvError(rc) + ")");
  }
  return ctx;
}

std::string TempPathFor(const std::string& path) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  char suffix[32];
  std::snprintf(suffix, sizeof(suffix), "%08llx",
                static_cast<unsigned long long>(rng() & 0xffffffffULL));
  return path + ".tmp-" + std::to_string(::getpid()) + "-" + suffix;
}

namespace {

// fsync of a file or folder by path (a read-only descriptor suffices on Linux).
Status SyncPath(const std::string& path, bool directory) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | (directory ? O_DIRECTORY : 0));
  if (fd < 0)
    return Status::IOError("cannot open " + path + " to sync it: " + std::strerror(errno));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return Status::IOError("fsync of " + path + " failed: " + std::strerror(err));
  return Status::OK();
}

}  // namespace

Status RenameInto(const std::string& tmp, const std::string& path) {
  FAIRY_RETURN_IF_ERROR(SyncPath(tmp, false));
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return Status::IOError("cannot rename " + tmp + " to " + path + ": " + ec.message());
  std::string dir = std::filesystem::path(path).parent_path().string();
  return SyncPath(dir.empty() ? "." : dir, true);
}

}  // namespace fairy::media::internal
