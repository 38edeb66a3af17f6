// Lossless chunks: intermediate frame ranges as FFV1 (planar RGB, bit exact) in Matroska.
//
// A chunk holds frames [first_index, first_index + frame_count) of one job at one size. The writer
// writes to "PATH.tmp-<pid>-<random>" and renames it to PATH only in Finish(), so a reader never
// sees a partial chunk and a retried task simply overwrites the chunk. The first frame index is
// stored in the Matroska tag FAIRY_FIRST_INDEX.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/media/media_types.h"
#include "common/status.h"

namespace fairy::media {

struct ChunkWriterOptions {
  int width = 0;               // REQUIRED: > 0; every frame must have this size
  int height = 0;              // REQUIRED: > 0
  int64_t first_index = 0;     // source index of the first frame written
  Rational frame_rate{25, 1};  // nominal rate stored in the file (timing comes from the source)
  int threads = 0;             // FFV1 slice threads; 0 = one per core
};

// Not thread-safe; one thread writes a chunk.
class ChunkWriter {
 public:
  // Creates the temporary file next to `path` (the folder must exist). IOError with the path.
  static Result<std::unique_ptr<ChunkWriter>> Create(const std::string& path,
                                                     const ChunkWriterOptions& options);
  // Removes the temporary file when Finish() was not called or failed.
  ~ChunkWriter();
  ChunkWriter(const ChunkWriter&) = delete;
  ChunkWriter& operator=(const ChunkWriter&) = delete;

  // Appends one frame. InvalidArgument when its size differs from the options'.
  Status Append(const RgbFrame& frame);
  // Flushes, closes and atomically renames the file to its final path. Call once.
  // FailedPrecondition (and no file) when no frame was appended.
  Status Finish();
  int64_t frames_written() const;

 private:
  struct Impl;
  explicit ChunkWriter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Reads a chunk back frame by frame (bit exact). Not thread-safe.
class ChunkReader {
 public:
  // NotFound / InvalidArgument (not a chunk: not FFV1 or not Matroska) with the path.
  static Result<std::unique_ptr<ChunkReader>> Open(const std::string& path);
  ~ChunkReader();
  ChunkReader(const ChunkReader&) = delete;
  ChunkReader& operator=(const ChunkReader&) = delete;

  int width() const;
  int height() const;
  int64_t first_index() const;
  // Frames in the chunk (counted when opening).
  int64_t frame_count() const;
  // Next frame; frame->index = first_index + position, frame->pts = position. false at the end.
  // Corruption when a frame fails FFV1's slice checksum.
  Result<bool> Next(RgbFrame* frame);

 private:
  struct Impl;
  explicit ChunkReader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Concatenates chunks (in the given order; sizes must match) into one chunk at `output`,
// losslessly. The first index is the first chunk's. InvalidArgument when the list is empty or sizes
// differ.
Status ConcatChunks(const std::vector<std::string>& chunks, const std::string& output);

}  // namespace fairy::media
