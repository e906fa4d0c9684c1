// The layout of label_overlay (migration 0009) and the writers of its chunks: one byte per line
// in chunks of 1024 lines, the label a line has now. Shared by FeedbackWriter (which changes
// bytes) and UploadWriter (which writes an upload's whole line map at commit).
//
// A byte is 0 / 1 (the label), kUnlabelled (a row without a label) or kNothing (the overlay says
// nothing: the stored transactions.class holds). An upload with uploads.line_map = true has a
// byte for every stored row, so kNothing there means no row has that line.
#pragma once

#include <pqxx/pqxx>

#include <cstdint>
#include <string>
#include <vector>

namespace fraud::storage::overlay {

inline constexpr int kChunkShift = 10;
inline constexpr int64_t kChunkLines = int64_t{1} << kChunkShift;
inline constexpr char kNothing = static_cast<char>(255);
inline constexpr char kUnlabelled = static_cast<char>(254);

inline int64_t ChunkOf(int64_t line) { return line >> kChunkShift; }
inline int64_t OffsetOf(int64_t line) { return line & (kChunkLines - 1); }
// The byte of a label (-1 = none).
inline char ByteOf(int label) { return label < 0 ? kUnlabelled : static_cast<char>(label); }

// Writes the chunks `numbers[i]` -> `bytes[i]` (kChunkLines bytes each) of `upload_id`,
// replacing those stored, in one statement. Throws what pqxx throws.
void WriteChunks(pqxx::work& txn, int64_t upload_id, const std::vector<int64_t>& numbers,
                 const std::vector<const std::string*>& bytes);

// The line map of one new upload, built as its rows are written (lines increase through an
// upload) and written at its commit. Memory: 1 KB per 1024 lines spanned. Thread-safety: none.
class LineMapBuilder {
 public:
  // The row at `line` (greater than every line added before) with `label` (-1 = none).
  void Add(int64_t line, int label);
  void Write(pqxx::work& txn, int64_t upload_id) const;

 private:
  std::vector<int64_t> numbers_;
  std::vector<std::string> chunks_;
};

}  // namespace fraud::storage::overlay
