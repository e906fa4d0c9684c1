#include "services/storage/label_overlay.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "services/storage/pg_util.h"

namespace fraud::storage::overlay {
namespace {

// $1 upload, $2 chunk numbers, $3 their bytes as "\x..." hex.
constexpr char kUpsertChunks[] =
    "INSERT INTO label_overlay (upload_id, chunk, labels) SELECT $1, u.c, u.l"
    " FROM unnest($2::bigint[], $3::bytea[]) AS u(c, l)"
    " ON CONFLICT (upload_id, chunk) DO UPDATE SET labels = EXCLUDED.labels";

}  // namespace

void WriteChunks(pqxx::work& txn, int64_t upload_id, const std::vector<int64_t>& numbers,
                 const std::vector<const std::string*>& bytes) {
  if (numbers.empty()) return;
  std::vector<std::string> hex;
  hex.reserve(bytes.size());
  for (const std::string* b : bytes) hex.push_back(absl::StrCat("\\x", absl::BytesToHexString(*b)));
  txn.exec_params(kUpsertChunks, upload_id,
                  BigintArrayLiteral(numbers),
                  QuotedArrayLiteral(hex));
}

void LineMapBuilder::Add(int64_t line, int label) {
  const int64_t chunk = ChunkOf(line);
  if (numbers_.empty() || numbers_.back() != chunk) {
    numbers_.push_back(chunk);
    chunks_.emplace_back(kChunkLines, kNothing);
  }
  chunks_.back()[OffsetOf(line)] = ByteOf(label);
}

void LineMapBuilder::Write(pqxx::work& txn, int64_t upload_id) const {
  std::vector<const std::string*> bytes;
  bytes.reserve(chunks_.size());
  for (const std::string& c : chunks_) bytes.push_back(&c);
  WriteChunks(txn, upload_id, numbers_, bytes);
}

}  // namespace fraud::storage::overlay
