// The feedback CSV reader (services/common/csv/feedback_csv.h): header forms, quoting, chunking,
// and one exact message per kind of bad input.
#include "services/common/csv/feedback_csv.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace fraud::csv {
namespace {

using ::testing::HasSubstr;

struct Parsed {
  absl::Status status;
  std::vector<FeedbackRow> rows;
};

// Feeds `text` in pieces of `chunk` bytes.
Parsed Parse(const std::string& text, size_t chunk = 1 << 20) {
  Parsed out;
  FeedbackCsvReader reader([&](FeedbackRow& row) {
    out.rows.push_back(row);
    return absl::OkStatus();
  });
  for (size_t i = 0; i < text.size() && out.status.ok(); i += chunk) {
    out.status = reader.Feed(std::string_view(text).substr(i, chunk));
  }
  if (out.status.ok()) out.status = reader.Finish();
  return out;
}

TEST(FeedbackCsvTest, ReadsUploadLineRowsWithQuotedNotesInAnyChunking) {
  const std::string text =
      "\xEF\xBB\xBFLabel, Upload_ID ,line,source,note,at\r\n"
      "1,7,2,chargeback,\"disputed, \"\"twice\"\"\",2024-05-01T10:00:00.5Z\r\n"
      "\r\n"
      "0,7,3,,,\n"
      "1,7,4,analyst,plain note,";
  for (size_t chunk : {size_t{1}, size_t{3}, size_t{64}, size_t{1} << 20}) {
    Parsed p = Parse(text, chunk);
    ASSERT_TRUE(p.status.ok()) << chunk << ": " << p.status;
    ASSERT_EQ(p.rows.size(), 3u);
    EXPECT_EQ(p.rows[0].file_line, 2);
    EXPECT_EQ(p.rows[0].upload_id, 7);
    EXPECT_EQ(p.rows[0].line, 2);
    EXPECT_EQ(p.rows[0].label, 1);
    EXPECT_EQ(p.rows[0].source, "chargeback");
    EXPECT_EQ(p.rows[0].note, "disputed, \"twice\"");
    EXPECT_TRUE(p.rows[0].has_at);
    EXPECT_EQ(p.rows[0].at_seconds, 1714557600);
    EXPECT_EQ(p.rows[0].at_nanos, 500000000);
    EXPECT_EQ(p.rows[1].file_line, 4);
    EXPECT_EQ(p.rows[1].label, 0);
    EXPECT_FALSE(p.rows[1].has_at);
    EXPECT_EQ(p.rows[2].file_line, 5);
    EXPECT_EQ(p.rows[2].note, "plain note");
  }
}

TEST(FeedbackCsvTest, ReadsTransactionIdsAndMixedIdentification) {
  Parsed p = Parse("transaction_id,label\ntx-1,1\n\"tx,2\",0\n");
  ASSERT_TRUE(p.status.ok()) << p.status;
  ASSERT_EQ(p.rows.size(), 2u);
  EXPECT_EQ(p.rows[1].transaction_id, "tx,2");
  Parsed mixed = Parse("upload_id,line,transaction_id,label\n3,2,,1\n,,tx-9,0\n");
  ASSERT_TRUE(mixed.status.ok()) << mixed.status;
  EXPECT_EQ(mixed.rows[0].upload_id, 3);
  EXPECT_EQ(mixed.rows[1].transaction_id, "tx-9");
}

TEST(FeedbackCsvTest, BadInputFailsWithLineColumnAndReason) {
  const std::pair<std::string, std::string> cases[] = {
      {"", "file is empty"},
      {"upload_id,line\n", "line 1: no label column"},
      {"upload_id,label\n", "line 1: upload_id and line go together"},
      {"label,source\n", "line 1: no id columns"},
      {"upload_id,line,label,colour\n", "line 1, column 4: unknown column 'colour'"},
      {"upload_id,line,label,label\n", "line 1, column label: repeated column"},
      {"upload_id,line,label\n1,2,2\n", "line 2, column label (3): must be 0 or 1, got '2'"},
      {"upload_id,line,label\n1,-2,1\n", "line 2, column line (2): not a positive integer: '-2'"},
      {"upload_id,line,label\n1,2\n", "line 2: 2 fields, the header has 3"},
      {"upload_id,line,label\n1,,1\n", "line 2, column line (2): empty"},
      {"upload_id,line,transaction_id,label\n1,2,tx,1\n",
       "line 2, column transaction_id (3): give either upload_id and line, or transaction_id"},
      {"upload_id,line,label\n1,2,\"1\n", "line 2, field 3: unterminated quote"},
      {"upload_id,line,label,at\n1,2,1,yesterday\n",
       "line 2, column at (4): not an RFC 3339 time: 'yesterday'"},
      {"upload_id,line,label\n1,2,1\n1,3,\xff\n", "line 3: not valid UTF-8"},
  };
  for (const auto& [text, message] : cases) {
    Parsed p = Parse(text);
    EXPECT_EQ(p.status.code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(std::string(p.status.message()), HasSubstr(message)) << text;
  }
}

TEST(FeedbackCsvTest, RowsBeforeTheErrorAreDeliveredAndNothingAfterIt) {
  Parsed p = Parse("upload_id,line,label\n1,2,1\n1,3,x\n1,4,0\n");
  EXPECT_FALSE(p.status.ok());
  ASSERT_EQ(p.rows.size(), 1u);
  EXPECT_EQ(p.rows[0].line, 2);
}

}  // namespace
}  // namespace fraud::csv
