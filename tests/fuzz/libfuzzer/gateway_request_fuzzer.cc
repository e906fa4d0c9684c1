// libFuzzer target: the REST gateway's request parsing (services/gateway): JSON bodies into every
// request proto the gateway accepts (FromJson, the proto JSON mapping), the Struct parse of the
// /api/v1/score body, query-parameter parsing (ParseInt/ParseDouble/ParseBool/ParseUploadMode),
// route patterns, and the upload body forwarder driven by a fuzzer-chosen sequence of raw or
// multipart events.
//
// Input layout: byte 0 selects the sub-target, the rest is its input. Invariants (abort when
// broken): JSON the gateway prints for a parsed request parses back to the same message; numbers
// accepted by the query parsers are within their bounds; the forwarder sends the sink exactly the
// file's bytes, in chunks no larger than asked, never more than max_bytes, and nothing after the
// sink refused a chunk.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/field_comparator.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "fraud/inference/v1/inference.pb.h"
#include "fraud/training/v1/training.pb.h"
#include "services/gateway/json_util.h"
#include "services/gateway/upload_forwarder.h"

namespace {

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "gateway_request_fuzzer invariant violated: %s\n", what);
    std::abort();
  }
}

void FuzzJson(uint8_t which, const std::string& body) {
  std::unique_ptr<google::protobuf::Message> m;
  switch (which % 6) {
    case 0: m = std::make_unique<fraud::training::v1::StartRunRequest>(); break;
    case 1: m = std::make_unique<fraud::training::v1::PromoteRequest>(); break;
    case 2: m = std::make_unique<fraud::training::v1::CancelRunRequest>(); break;
    case 3: m = std::make_unique<fraud::training::v1::EvaluateRequest>(); break;
    case 4: m = std::make_unique<fraud::inference::v1::ReloadRequest>(); break;
    default: m = std::make_unique<fraud::inference::v1::PredictRequest>(); break;
  }
  if (!fraud::gateway::FromJson(body, m.get()).ok()) return;
  const std::string printed = fraud::gateway::ToJson(*m);
  std::unique_ptr<google::protobuf::Message> back(m->New());
  Check(fraud::gateway::FromJson(printed, back.get()).ok(), "printed JSON parses back");
  // Exact equality, except that NaN equals NaN and -0 equals 0: protobuf 3.21 prints -0.0 as "-0"
  // and parses that back as +0 (harmless: the sign of a zero feature does not change a score).
  google::protobuf::util::DefaultFieldComparator comparator;
  comparator.set_treat_nan_as_equal(true);
  google::protobuf::util::MessageDifferencer differencer;
  differencer.set_field_comparator(&comparator);
  Check(differencer.Compare(*m, *back), "JSON round trip keeps the message");
}

void FuzzScoreBody(const std::string& body) {
  // What /api/v1/score does first: parse as a Struct, ignoring unknown fields.
  google::protobuf::Struct doc;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  if (!google::protobuf::util::JsonStringToMessage(body, &doc, options).ok()) return;
  auto it = doc.fields().find("rows");
  if (it == doc.fields().end() || it->second.kind_case() != google::protobuf::Value::kListValue) {
    return;
  }
  for (const auto& row : it->second.list_value().values()) {
    if (row.kind_case() != google::protobuf::Value::kListValue) continue;
    for (const auto& v : row.list_value().values()) {
      if (v.kind_case() == google::protobuf::Value::kNumberValue) (void)v.number_value();
    }
  }
}

void FuzzQuery(const std::string& text) {
  const size_t nul = text.find('\0');
  const std::string value = text.substr(0, nul);
  if (auto v = fraud::gateway::ParseInt("page_size", value, 0, 500); v.ok()) {
    Check(*v >= 0 && *v <= 500, "ParseInt within bounds");
  }
  if (auto v = fraud::gateway::ParseInt("id", value, 1, INT64_MAX); v.ok()) {
    Check(*v >= 1, "ParseInt lower bound");
  }
  if (auto v = fraud::gateway::ParseDouble("fraud_rate", value, 0, 1); v.ok()) {
    Check(std::isfinite(*v) && *v >= 0 && *v <= 1, "ParseDouble within bounds");
  }
  (void)fraud::gateway::ParseBool("labels", value);
  fraud::storage::v1::UploadMode mode;
  if (fraud::gateway::ParseUploadMode(value, &mode).ok()) {
    Check(mode == fraud::storage::v1::UPLOAD_MODE_STRICT ||
              mode == fraud::storage::v1::UPLOAD_MODE_LENIENT,
          "ParseUploadMode yields a known mode");
  }
}

// Records what reaches ingest; refuses writes after `fail_after` chunks.
class RecordingSink : public fraud::gateway::ChunkSink {
 public:
  explicit RecordingSink(int fail_after, size_t chunk) : fail_after_(fail_after), chunk_(chunk) {}
  bool Open(const fraud::ingest::v1::UploadOptions& options) override {
    Check(!opened_, "opened twice");
    opened_ = true;
    Check(!options.file_name().empty(), "a file name is always sent");
    return fail_after_ != 0;
  }
  bool Write(absl::string_view chunk) override {
    Check(opened_, "write before open");
    Check(!refused_, "write after the sink refused");
    Check(!chunk.empty() && chunk.size() <= chunk_, "chunk size");
    if (++writes_ >= fail_after_ && fail_after_ >= 0) {
      refused_ = true;
      return false;
    }
    received_.append(chunk.data(), chunk.size());
    return true;
  }
  const std::string& received() const { return received_; }
  bool refused() const { return refused_; }

 private:
  int fail_after_;
  size_t chunk_;
  bool opened_ = false;
  bool refused_ = false;
  int writes_ = 0;
  std::string received_;
};

void FuzzForwarder(const uint8_t* data, size_t size) {
  if (size < 3) return;
  const bool multipart = data[0] & 1;
  const size_t chunk = 1 + (data[0] >> 1) % 16;
  const int64_t max_bytes = data[1] % 4 == 0 ? 1 << 20 : data[1];
  const int fail_after = data[2] % 8 == 0 ? -1 : data[2] % 8 - 1;
  fraud::gateway::UploadRequestParams params;
  params.multipart = multipart;
  params.chunk_bytes = chunk;
  params.max_bytes = max_bytes;
  params.drain_bytes = 64;
  RecordingSink sink(fail_after, chunk);
  fraud::gateway::UploadForwarder f(&sink, params);
  std::string file;  // the bytes of the file as the client sent them
  bool in_file = false;
  bool read_ok = true;
  size_t i = 3;
  while (i < size) {
    const uint8_t op = data[i++];
    const size_t n = std::min<size_t>(op >> 3, size - i);
    const char* p = reinterpret_cast<const char*>(data + i);
    bool more = true;
    switch (op & 7) {
      case 0:
      case 1:
        if (multipart) {
          more = f.OnPartData(p, n);
          if (in_file) file.append(p, n);
        } else {
          more = f.OnData(p, n);
          file.append(p, n);
        }
        break;
      case 2: {
        static const char* kNames[] = {"file", "mode", "file_name", "other"};
        const std::string name = kNames[n % 4];
        in_file = name == "file";
        more = f.OnPartHeader(name, std::string(p, n));
        break;
      }
      case 3:
        read_ok = (n % 5) != 0;
        break;
      default:
        if (multipart) {
          more = f.OnPartData(p, n);
          if (in_file) file.append(p, n);
        } else {
          more = f.OnData(p, n);
          file.append(p, n);
        }
        break;
    }
    i += n;
    if (!more) break;
  }
  const absl::Status s = f.Finish(read_ok);
  Check(static_cast<int64_t>(sink.received().size()) <= max_bytes, "more than max_bytes sent");
  Check(file.compare(0, sink.received().size(), sink.received()) == 0,
        "the sink received bytes the client did not send, or out of order");
  if (s.ok()) {
    Check(!sink.refused(), "OK after the sink refused");
    Check(sink.received() == file, "OK but the sink did not get the whole file");
    Check(static_cast<int64_t>(file.size()) <= max_bytes, "OK past max_bytes");
  } else {
    Check(!s.message().empty(), "errors say what went wrong");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const std::string rest(reinterpret_cast<const char*>(data) + 2, size - 2);
  switch (data[0] % 4) {
    case 0:
      FuzzJson(data[1], rest);
      break;
    case 1:
      FuzzScoreBody(rest);
      break;
    case 2:
      FuzzQuery(rest);
      break;
    default:
      FuzzForwarder(data + 1, size - 1);
      break;
  }
  return 0;
}
