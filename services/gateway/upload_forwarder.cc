#include "services/gateway/upload_forwarder.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "services/gateway/http_status.h"

namespace fraud::gateway {
namespace {

// Form fields other than `file` are small; anything longer is refused.
constexpr size_t kMaxFieldBytes = 1024;
constexpr char kDefaultFileName[] = "upload.csv";

std::string HumanBytes(int64_t n) {
  if (n >= (int64_t{1} << 30) && n % (int64_t{1} << 30) == 0) {
    return absl::StrCat(n >> 30, " GiB");
  }
  if (n >= (1 << 20) && n % (1 << 20) == 0) return absl::StrCat(n >> 20, " MiB");
  return absl::StrCat(n, " bytes");
}

}  // namespace

absl::Status ParseUploadMode(const std::string& text, storage::v1::UploadMode* mode) {
  const std::string m = absl::AsciiStrToLower(text);
  if (m.empty() || m == "strict" || m == "upload_mode_strict") {
    *mode = storage::v1::UPLOAD_MODE_STRICT;
    return absl::OkStatus();
  }
  if (m == "lenient" || m == "upload_mode_lenient") {
    *mode = storage::v1::UPLOAD_MODE_LENIENT;
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("parameter mode must be 'strict' or 'lenient', got '", text.substr(0, 40), "'"));
}

UploadForwarder::UploadForwarder(ChunkSink* sink, UploadRequestParams params)
    : sink_(sink), params_(std::move(params)) {
  buffer_.reserve(params_.chunk_bytes);
}

bool UploadForwarder::Fail(State state, absl::Status status) {
  if (state_ == State::kOk) {
    state_ = state;
    error_ = std::move(status);
  }
  return Draining(0);
}

// After a closed sink or an oversized body the rest is read and dropped, up to drain_bytes, so a
// client that does not wait for "100 Continue" still reads the answer instead of a reset.
bool UploadForwarder::Draining(size_t size) {
  drained_ += static_cast<int64_t>(size);
  return (state_ == State::kSinkClosed || state_ == State::kTooLarge) &&
         drained_ <= params_.drain_bytes;
}

bool UploadForwarder::EnsureOpen() {
  if (opened_) return true;
  ingest::v1::UploadOptions options;
  storage::v1::UploadMode mode = storage::v1::UPLOAD_MODE_STRICT;
  const std::string& mode_text = !params_.mode.empty() ? params_.mode : form_mode_;
  if (absl::Status s = ParseUploadMode(mode_text, &mode); !s.ok()) {
    return Fail(State::kBadRequest, std::move(s));
  }
  options.set_mode(mode);
  std::string name = params_.file_name;
  if (name.empty()) name = form_file_name_;
  if (name.empty()) name = part_file_name_;
  if (name.empty()) name = kDefaultFileName;
  options.set_file_name(name);
  opened_ = true;
  if (!sink_->Open(options)) {
    return Fail(State::kSinkClosed, absl::UnavailableError("the upload stream was closed"));
  }
  return true;
}

bool UploadForwarder::Flush() {
  if (buffer_.empty()) return true;
  const bool ok = sink_->Write(buffer_);
  ++chunks_;
  buffer_.clear();
  if (!ok) Fail(State::kSinkClosed, absl::UnavailableError("the upload stream was closed"));
  return ok;
}

bool UploadForwarder::Forward(const char* data, size_t size) {
  if (state_ != State::kOk) return Draining(size);
  bytes_ += static_cast<int64_t>(size);
  if (bytes_ > params_.max_bytes) {
    return Fail(State::kTooLarge,
                PayloadTooLarge(absl::StrCat("the upload exceeds the limit of ",
                                             HumanBytes(params_.max_bytes),
                                             " (--max_upload_bytes); nothing was stored")));
  }
  if (!EnsureOpen()) return Draining(0);
  while (size > 0) {
    const size_t take = std::min(size, params_.chunk_bytes - buffer_.size());
    buffer_.append(data, take);
    data += take;
    size -= take;
    if (buffer_.size() == params_.chunk_bytes && !Flush()) return Draining(size);
  }
  return true;
}

bool UploadForwarder::OnData(const char* data, size_t size) { return Forward(data, size); }

bool UploadForwarder::OnPartHeader(const std::string& name, const std::string& filename) {
  if (state_ != State::kOk) return Draining(0);
  if (part_ == Part::kField) {
    if (field_name_ == "mode") form_mode_ = field_value_;
    if (field_name_ == "file_name") form_file_name_ = field_value_;
  }
  field_value_.clear();
  field_name_ = name;
  if (name == "file") {
    if (++file_parts_ > 1) {
      return Fail(State::kBadRequest,
                  absl::InvalidArgumentError("the multipart body has more than one 'file' field"));
    }
    part_ = Part::kFile;
    part_file_name_ = filename;
  } else if (name == "mode" || name == "file_name") {
    part_ = Part::kField;
  } else {
    part_ = Part::kIgnored;
  }
  return true;
}

bool UploadForwarder::OnPartData(const char* data, size_t size) {
  switch (part_) {
    case Part::kFile:
      return Forward(data, size);
    case Part::kField:
      if (field_value_.size() + size > kMaxFieldBytes) {
        return Fail(State::kBadRequest, absl::InvalidArgumentError(absl::StrCat(
                                            "form field '", field_name_, "' is longer than ",
                                            kMaxFieldBytes, " bytes")));
      }
      field_value_.append(data, size);
      return true;
    case Part::kIgnored:
    case Part::kNone:
      if (state_ != State::kOk) return Draining(size);
      return true;
  }
  return true;
}

absl::Status UploadForwarder::Finish(bool read_ok) {
  if (state_ == State::kOk && !read_ok) {
    Fail(State::kBadRequest,
         absl::InvalidArgumentError("the request body could not be read to its end (connection "
                                    "closed or malformed multipart body); nothing was stored"));
  }
  if (state_ == State::kOk && params_.multipart && file_parts_ == 0) {
    Fail(State::kBadRequest,
         absl::InvalidArgumentError("the multipart body has no 'file' field with the CSV"));
  }
  if (state_ == State::kOk) {
    if (part_ == Part::kField) {
      if (field_name_ == "mode") form_mode_ = field_value_;
      if (field_name_ == "file_name") form_file_name_ = field_value_;
    }
    if (EnsureOpen()) Flush();
  }
  return state_ == State::kOk ? absl::OkStatus() : error_;
}

}  // namespace fraud::gateway
