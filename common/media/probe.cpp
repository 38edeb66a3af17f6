#include "common/media/probe.h"

#include <algorithm>
#include <cmath>
#include <utility>

extern "C" {
#include <libavutil/display.h>
}

#include "common/media/ffmpeg_util.h"

namespace fairy::media {

std::string Rational::ToString() const { return std::to_string(num) + "/" + std::to_string(den); }

bool VideoInfo::vfr() const {
  if (frame_pts.size() < 3) return false;
  int64_t lo = frame_pts[1] - frame_pts[0], hi = lo;
  for (size_t i = 2; i < frame_pts.size(); ++i) {
    int64_t d = frame_pts[i] - frame_pts[i - 1];
    lo = std::min(lo, d);
    hi = std::max(hi, d);
  }
  return hi - lo > 1;
}

namespace {

using internal::FromAv;

int ReadRotation(const AVStream* st) {
  size_t size = 0;
  const uint8_t* matrix = av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, &size);
  if (matrix == nullptr || size < 9 * sizeof(int32_t)) return 0;
  double deg = av_display_rotation_get(reinterpret_cast<const int32_t*>(matrix));
  if (std::isnan(deg)) return 0;
  // As ffprobe prints it: av_display_rotation_get() is in [-180, 180].
  int r = static_cast<int>(std::lround(deg));
  return r;
}

struct PacketStamp {
  int64_t pts;
  int64_t duration;
};

// Decodes the whole stream; returns the frames' best-effort timestamps (what ffprobe shows) in
// output order (*missing = frames without one, which the caller appends).
Result<std::vector<PacketStamp>> DecodedStamps(const std::string& path, int stream_index,
                                               int64_t* missing) {
  FAIRY_ASSIGN_OR_RETURN(internal::FormatInputPtr fmt, internal::OpenInput(path));
  FAIRY_ASSIGN_OR_RETURN(internal::CodecContextPtr dec,
                         internal::OpenDecoder(path, fmt.get(), stream_index, 0));
  for (unsigned i = 0; i < fmt->nb_streams; ++i) {
    if (static_cast<int>(i) != stream_index) fmt->streams[i]->discard = AVDISCARD_ALL;
  }
  internal::PacketPtr pkt(av_packet_alloc());
  internal::FramePtr frame(av_frame_alloc());
  std::vector<PacketStamp> stamps;
  *missing = 0;
  bool eof = false;
  for (;;) {
    int rc = avcodec_receive_frame(dec.get(), frame.get());
    if (rc == 0) {
      const int64_t ts = frame->best_effort_timestamp;
      if (ts == AV_NOPTS_VALUE)
        ++*missing;
      else
        stamps.push_back({ts, frame->pkt_duration});
      av_frame_unref(frame.get());
      continue;
    }
    if (rc == AVERROR_EOF) break;
    if (rc != AVERROR(EAGAIN))
      return Status::Corruption(path + ": decoding failed (" + internal::AvError(rc) + ")");
    if (eof) break;
    rc = av_read_frame(fmt.get(), pkt.get());
    if (rc < 0) {
      eof = true;
      avcodec_send_packet(dec.get(), nullptr);
      continue;
    }
    if (pkt->stream_index == stream_index) avcodec_send_packet(dec.get(), pkt.get());
    av_packet_unref(pkt.get());
  }
  return stamps;
}

}  // namespace

Result<VideoInfo> Probe(const std::string& path, const ProbeOptions& options) {
  FAIRY_ASSIGN_OR_RETURN(internal::FormatInputPtr fmt, internal::OpenInput(path));
  VideoInfo info;
  info.path = path;
  info.container = fmt->iformat->name;
  if (fmt->duration != AV_NOPTS_VALUE && fmt->duration > 0) {
    info.container_duration_s = static_cast<double>(fmt->duration) / AV_TIME_BASE;
  }
  for (unsigned i = 0; i < fmt->nb_streams; ++i) {
    AVStream* st = fmt->streams[i];
    const AVCodecParameters* par = st->codecpar;
    if (par->codec_type == AVMEDIA_TYPE_VIDEO && info.stream_index < 0 &&
        !(st->disposition & AV_DISPOSITION_ATTACHED_PIC)) {
      info.stream_index = static_cast<int>(i);
    } else if (par->codec_type == AVMEDIA_TYPE_AUDIO) {
      AudioStreamInfo a;
      a.stream_index = static_cast<int>(i);
      a.codec = avcodec_get_name(par->codec_id);
      a.sample_rate = par->sample_rate;
      a.channels = par->ch_layout.nb_channels;
      if (st->start_time != AV_NOPTS_VALUE) a.start_time_s = st->start_time * av_q2d(st->time_base);
      info.audio.push_back(std::move(a));
    }
  }
  if (info.stream_index < 0) {
    return Status::InvalidArgument(path + ": no video stream (" +
                                   std::to_string(info.audio.size()) +
                                   " audio stream(s); container " + info.container + ")");
  }
  AVStream* vs = fmt->streams[info.stream_index];
  const AVCodecParameters* par = vs->codecpar;
  info.codec = avcodec_get_name(par->codec_id);
  info.width = par->width;
  info.height = par->height;
  if (info.width <= 0 || info.height <= 0) {
    return Status::Corruption(path + ": video stream #" + std::to_string(info.stream_index) +
                              " has no frame size (" + std::to_string(info.width) + "x" +
                              std::to_string(info.height) + ")");
  }
  AVRational sar = av_guess_sample_aspect_ratio(fmt.get(), vs, nullptr);
  if (sar.num > 0 && sar.den > 0) {
    av_reduce(&sar.num, &sar.den, sar.num, sar.den, 1 << 30);
    info.sar = FromAv(sar);
  }
  info.rotation_deg = ReadRotation(vs);
  const bool quarter_turn = std::abs(info.rotation_deg) == 90 || std::abs(info.rotation_deg) == 270;
  int sar_width = info.width;
  if (info.sar.valid() && info.sar.num != info.sar.den) {
    sar_width = static_cast<int>(std::lround(info.width * info.sar.ToDouble()));
  }
  info.display_width = quarter_turn ? info.height : sar_width;
  info.display_height = quarter_turn ? sar_width : info.height;
  info.oriented_width = quarter_turn ? info.height : info.width;
  info.oriented_height = quarter_turn ? info.width : info.height;
  info.r_frame_rate = FromAv(vs->r_frame_rate);
  info.avg_frame_rate = FromAv(vs->avg_frame_rate);
  info.frame_rate = info.avg_frame_rate.valid() ? info.avg_frame_rate : info.r_frame_rate;
  info.interlaced = par->field_order == AV_FIELD_TT || par->field_order == AV_FIELD_BB ||
                    par->field_order == AV_FIELD_TB || par->field_order == AV_FIELD_BT;
  info.time_base = FromAv(vs->time_base);
  const double tb = av_q2d(vs->time_base);
  if (vs->start_time != AV_NOPTS_VALUE) info.start_time_s = vs->start_time * tb;
  if (vs->duration != AV_NOPTS_VALUE && vs->duration > 0)
    info.duration_s = vs->duration * tb;
  else
    info.duration_s = info.container_duration_s;

  if (!options.count_frames) {
    info.frame_count = vs->nb_frames > 0 ? vs->nb_frames : 0;
    return info;
  }

  // Count by demuxing: one packet per frame for every codec FFmpeg demuxes (the decoder drops the
  // packets an edit list flags as discarded, so they are not frames).
  for (unsigned i = 0; i < fmt->nb_streams; ++i) {
    if (static_cast<int>(i) != info.stream_index) fmt->streams[i]->discard = AVDISCARD_ALL;
  }
  internal::PacketPtr pkt(av_packet_alloc());
  std::vector<PacketStamp> stamps;
  int64_t missing = 0;
  int64_t discarded = 0;
  bool last_missing = false;
  int read_error = 0;
  for (;;) {
    int rc = av_read_frame(fmt.get(), pkt.get());
    if (rc < 0) {
      if (rc != AVERROR_EOF) read_error = rc;
      break;
    }
    if (pkt->stream_index == info.stream_index && (pkt->flags & AV_PKT_FLAG_DISCARD)) {
      ++discarded;  // in the file (and the header's count) but trimmed by an edit list
    } else if (pkt->stream_index == info.stream_index) {
      last_missing = pkt->pts == AV_NOPTS_VALUE;
      if (last_missing)
        ++missing;
      else
        stamps.push_back({pkt->pts, pkt->duration});
    }
    av_packet_unref(pkt.get());
  }
  int64_t counted = static_cast<int64_t>(stamps.size()) + missing;
  if (read_error != 0 && counted == 0) {
    return Status::Corruption(path + ": cannot read any video packet (" +
                              internal::AvError(read_error) + ")");
  }
  if (counted == 0) {
    return Status::Corruption(path + ": video stream #" + std::to_string(info.stream_index) +
                              " has no frames");
  }
  if (vs->nb_frames > 0 && counted + discarded < vs->nb_frames) {
    return Status::Corruption(path + ": truncated: the header lists " +
                              std::to_string(vs->nb_frames) + " video frames but only " +
                              std::to_string(counted + discarded) + " can be read" +
                              (read_error ? " (" + internal::AvError(read_error) + ")" : ""));
  }
  if (missing > 0 &&
      !(missing == 1 && stamps.size() + 1 == static_cast<size_t>(counted) && last_missing)) {
    // Packets without timestamps in the middle (e.g. MXF I/P frames): the decoder reorders and
    // stamps frames itself, so take count and timestamps from a decode, as ffprobe does.
    FAIRY_ASSIGN_OR_RETURN(stamps, DecodedStamps(path, info.stream_index, &missing));
  }
  counted = static_cast<int64_t>(stamps.size()) + missing;
  std::sort(stamps.begin(), stamps.end(),
            [](const PacketStamp& a, const PacketStamp& b) { return a.pts < b.pts; });
  // Nominal step for frames without a timestamp (appended at the end: in the files seen, only the
  // last frame of a stream lacks one).
  int64_t step = 0;
  if (stamps.size() >= 2) step = stamps.back().pts - stamps[stamps.size() - 2].pts;
  if (step <= 0 && info.frame_rate.valid()) {
    step = std::max<int64_t>(1, std::llround(1.0 / (info.frame_rate.ToDouble() * tb)));
  }
  if (step <= 0) step = 1;
  info.frame_pts.reserve(counted);
  for (const PacketStamp& s : stamps) info.frame_pts.push_back(s.pts);
  int64_t last_duration = stamps.empty() ? 0 : stamps.back().duration;
  for (int64_t i = 0; i < missing; ++i) {
    info.frame_pts.push_back(info.frame_pts.empty() ? 0 : info.frame_pts.back() + step);
    last_duration = 0;
  }
  if (last_duration <= 0) last_duration = step;
  info.frame_count = counted;
  info.frame_count_exact = true;
  info.start_time_s = info.frame_pts.front() * tb;
  info.duration_s = (info.frame_pts.back() - info.frame_pts.front() + last_duration) * tb;
  return info;
}

}  // namespace fairy::media
