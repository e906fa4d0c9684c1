// Model artifacts in the registry against a real PostgreSQL: PutModelArtifact / GetModelArtifact
// through the real storage service in-process, with the client side every service uses
// (services/common/rpc/artifact_transfer). Covers the round trip, immutability, all-or-nothing on
// every protocol and data error, a corrupted stored artifact, and a 96 MiB artifact in bounded
// memory.
#include <gmock/gmock.h>
#include <grpcpp/client_context.h>
#include <gtest/gtest.h>
#include <malloc.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <iostream>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "services/common/core/sha256.h"
#include "services/common/rpc/artifact_transfer.h"
#include "services/common/rpc/grpc_status.h"
#include "tests/testing/in_process_storage.h"
#include "tests/testing/pg_fixture.h"
#include "tests/testing/status_matchers.h"

namespace fraud::storage {
namespace {

namespace fs = std::filesystem;
using ::fraud::testing::IsOk;
using ::fraud::testing::StatusIs;
using ::testing::HasSubstr;

constexpr absl::Duration kTimeout = absl::Seconds(60);

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    const uint64_t v = rng();
    for (size_t j = 0; j < 8 && i + j < n; ++j) out[i + j] = static_cast<char>(v >> (8 * j));
  }
  return out;
}

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The largest amount of heap in use (malloc'ed and not freed, mmap'ed blocks included) while it
// runs, sampled every millisecond: what the transfer holds, unlike the resident set, which also
// keeps what glibc's per-thread arenas retain after frees.
class PeakHeapSampler {
 public:
  PeakHeapSampler() : baseline_(InUse()), peak_(baseline_) {
    thread_ = std::thread([this] {
      while (!stop_.load()) {
        const int64_t now = InUse();
        if (now > peak_.load()) peak_.store(now);
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    });
  }
  ~PeakHeapSampler() { Stop(); }
  // Peak minus the in-use bytes when sampling began.
  int64_t Stop() {
    if (thread_.joinable()) {
      stop_.store(true);
      thread_.join();
    }
    return peak_.load() - baseline_;
  }

 private:
  static int64_t InUse() {
    const struct mallinfo2 m = mallinfo2();
    return static_cast<int64_t>(m.uordblks + m.hblkhd);
  }
  const int64_t baseline_;
  std::atomic<int64_t> peak_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

class ArtifactStoreTest : public fraud::testing::PgFixture {
 protected:
  void SetUp() override {
    PgFixture::SetUp();
    if (IsSkipped() || HasFailure()) return;
    absl::StatusOr<std::unique_ptr<fraud::testing::InProcessStorage>> s =
        fraud::testing::InProcessStorage::Start({conninfo(), 8, "artifact_it", 16});
    ASSERT_THAT(s, IsOk());
    storage_ = std::move(*s);
    stub_ = v1::StorageService::NewStub(storage_->channel());
    root_ = ::testing::TempDir() + "/artifact_it_" + schema();
    fs::create_directories(root_ + "/src");
  }
  void TearDown() override {
    if (storage_) storage_->Shutdown();
    storage_.reset();
    std::error_code ec;
    if (!root_.empty()) fs::remove_all(root_, ec);
    PgFixture::TearDown();
  }

  // Writes `files` (name -> bytes) under <root>/src/<version>/ and returns that directory.
  std::string WriteSource(int64_t version, const std::vector<std::pair<std::string, std::string>>& files) {
    const fs::path dir = fs::path(root_) / "src" / absl::StrCat(version);
    fs::create_directories(dir);
    for (const auto& [name, bytes] : files) std::ofstream(dir / name, std::ios::binary) << bytes;
    return dir.string();
  }
  std::vector<std::string> Names(const std::vector<std::pair<std::string, std::string>>& files) {
    std::vector<std::string> names;
    for (const auto& f : files) names.push_back(f.first);
    return names;
  }
  void Register(int64_t version) {
    v1::ModelVersion m;
    m.set_version(version);
    m.set_family(common::v1::MODEL_FAMILY_LOGREG);
    m.set_artifact_uri(rpc::RegistryArtifactUri(version));
    ASSERT_THAT(storage_->store().RegisterModel(m), IsOk());
  }
  absl::StatusOr<v1::PutModelArtifactResponse> Put(int64_t version, const std::string& dir,
                                                   const std::vector<std::string>& names) {
    return rpc::PutModelArtifact(*stub_, version, dir, names, kTimeout);
  }
  absl::StatusOr<std::string> Fetch(int64_t version, const std::string& cache = "cache") {
    return rpc::FetchModelArtifact(*stub_, version, root_ + "/" + cache, kTimeout);
  }
  // Sends `requests` as one raw PutModelArtifact stream.
  absl::Status RawPut(const std::vector<v1::PutModelArtifactRequest>& requests) {
    grpc::ClientContext ctx;
    v1::PutModelArtifactResponse response;
    auto writer = stub_->PutModelArtifact(&ctx, &response);
    for (const auto& r : requests) {
      if (!writer->Write(r)) break;
    }
    writer->WritesDone();
    return rpc::FromGrpcStatus(writer->Finish());
  }
  int64_t StoredChunks() { return std::stoll(QueryScalar("SELECT count(*) FROM model_artifact_chunks")); }
  int64_t StoredArtifacts() { return std::stoll(QueryScalar("SELECT count(*) FROM model_artifacts")); }

  std::unique_ptr<fraud::testing::InProcessStorage> storage_;
  std::unique_ptr<v1::StorageService::Stub> stub_;
  std::string root_;
};

// A valid header + chunks + commit for one file of `bytes`.
std::vector<v1::PutModelArtifactRequest> OneFileStream(int64_t version, const std::string& name,
                                                       const std::string& bytes) {
  std::vector<v1::PutModelArtifactRequest> out(3);
  v1::ArtifactHeader* h = out[0].mutable_begin();
  h->set_version(version);
  common::v1::ArtifactFile* f = h->add_files();
  f->set_name(name);
  f->set_size_bytes(static_cast<int64_t>(bytes.size()));
  f->set_sha256(Sha256Hex(bytes));
  out[1].mutable_chunk()->set_file_index(0);
  out[1].mutable_chunk()->set_data(bytes);
  out[2].mutable_commit();
  return out;
}

TEST_F(ArtifactStoreTest, RoundTripIsByteIdenticalAcrossChunksAndEmptyFiles) {
  const std::vector<std::pair<std::string, std::string>> files = {
      {"manifest.textproto", "version: 3\n"},
      {"weights.pt", RandomBytes(3 * rpc::kArtifactChunkBytes + 123, 1)},
      {"empty.bin", ""},
      {"tail.json", "{}"}};
  const std::string src = WriteSource(3, files);
  absl::StatusOr<v1::PutModelArtifactResponse> put = Put(3, src, Names(files));
  ASSERT_THAT(put, IsOk());
  EXPECT_EQ(put->files(), 4);
  EXPECT_EQ(put->total_bytes(), static_cast<int64_t>(3 * rpc::kArtifactChunkBytes + 123 + 11 + 2));
  EXPECT_EQ(StoredChunks(), 4 + 1 + 1);  // weights in 4 chunks, manifest 1, tail 1, empty none
  Register(3);
  absl::StatusOr<std::string> dir = Fetch(3);
  ASSERT_THAT(dir, IsOk());
  EXPECT_EQ(*dir, root_ + "/cache/3");
  for (const auto& [name, bytes] : files) EXPECT_EQ(ReadFile(fs::path(*dir) / name), bytes) << name;
  // Nothing else in the cache: no temporary directory left behind.
  int entries = 0;
  for (const auto& e : fs::directory_iterator(root_ + "/cache")) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1);
  // A version already in the cache is not fetched again (even if the registry went away).
  storage_->Shutdown();
  EXPECT_THAT(Fetch(3), IsOk());
}

TEST_F(ArtifactStoreTest, ArtifactsAreImmutable) {
  const std::string src = WriteSource(4, {{"a.bin", "first"}});
  ASSERT_THAT(Put(4, src, {"a.bin"}), IsOk());
  std::ofstream(fs::path(src) / "a.bin", std::ios::binary) << "second";
  EXPECT_THAT(Put(4, src, {"a.bin"}),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("already has an artifact")));
  Register(4);
  absl::StatusOr<std::string> dir = Fetch(4);
  ASSERT_THAT(dir, IsOk());
  EXPECT_EQ(ReadFile(fs::path(*dir) / "a.bin"), "first");
}

TEST_F(ArtifactStoreTest, UnregisteredOrUnknownVersionsAreNotServed) {
  const std::string src = WriteSource(5, {{"a.bin", "x"}});
  ASSERT_THAT(Put(5, src, {"a.bin"}), IsOk());
  EXPECT_THAT(Fetch(5), StatusIs(absl::StatusCode::kNotFound, HasSubstr("not registered")));
  EXPECT_FALSE(fs::exists(root_ + "/cache/5"));
  EXPECT_THAT(Fetch(6), StatusIs(absl::StatusCode::kNotFound));
  Register(5);
  EXPECT_THAT(Fetch(5), IsOk());
  EXPECT_THAT(Fetch(0), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(ArtifactStoreTest, EveryBadStreamIsRefusedAndStoresNothing) {
  const std::string bytes = RandomBytes(5000, 2);
  struct Case {
    std::string what;
    std::function<void(std::vector<v1::PutModelArtifactRequest>&)> mutate;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"path in name", [](auto& r) { r[0].mutable_begin()->mutable_files(0)->set_name("models/x"); },
       "outside [A-Za-z0-9._-]"},
      {"hidden name", [](auto& r) { r[0].mutable_begin()->mutable_files(0)->set_name(".x"); },
       "starts with '.'"},
      {"empty name", [](auto& r) { r[0].mutable_begin()->mutable_files(0)->set_name(""); },
       "empty file name"},
      {"bad sha", [](auto& r) { r[0].mutable_begin()->mutable_files(0)->set_sha256("ABC"); },
       "64 lowercase hex"},
      {"sha mismatch",
       [](auto& r) { r[0].mutable_begin()->mutable_files(0)->set_sha256(std::string(64, 'a')); },
       "the header says"},
      {"short file",
       [](auto& r) { r[0].mutable_begin()->mutable_files(0)->set_size_bytes(6000); },
       "received 5000 bytes"},
      {"long file",
       [](auto& r) { r[0].mutable_begin()->mutable_files(0)->set_size_bytes(4000); },
       "more than the 4000 bytes"},
      {"negative version", [](auto& r) { r[0].mutable_begin()->set_version(-1); },
       "must be positive"},
      {"no files", [](auto& r) { r[0].mutable_begin()->clear_files(); }, "lists no files"},
      {"duplicate name",
       [](auto& r) { *r[0].mutable_begin()->add_files() = r[0].begin().files(0); },
       "listed twice"},
      {"chunk before begin", [](auto& r) { r.erase(r.begin()); }, "chunk before begin"},
      {"file index out of range", [](auto& r) { r[1].mutable_chunk()->set_file_index(1); },
       "file index 1"},
      {"oversized chunk",
       [](auto& r) {
         r[0].mutable_begin()->mutable_files(0)->set_size_bytes(rpc::kArtifactChunkBytes + 1);
         r[1].mutable_chunk()->set_data(std::string(rpc::kArtifactChunkBytes + 1, 'x'));
       },
       "chunks hold 1 to"},
      {"no commit", [](auto& r) { r.pop_back(); }, "ended before commit"},
      {"empty message", [](auto& r) { r[2].Clear(); }, "no begin, chunk or commit"},
      {"second begin", [](auto& r) { r[2] = r[0]; }, "second begin"},
  };
  for (const Case& c : cases) {
    std::vector<v1::PutModelArtifactRequest> stream = OneFileStream(9, "w.bin", bytes);
    c.mutate(stream);
    EXPECT_THAT(RawPut(stream), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)))
        << c.what;
    EXPECT_EQ(StoredArtifacts(), 0) << c.what;
    EXPECT_EQ(StoredChunks(), 0) << c.what;
  }
  // The same stream unmodified is accepted: the cases above failed for their defect alone.
  EXPECT_THAT(RawPut(OneFileStream(9, "w.bin", bytes)), IsOk());
  EXPECT_EQ(StoredArtifacts(), 1);
}

TEST_F(ArtifactStoreTest, CorruptedStoredArtifactIsRefusedAndNothingIsCached) {
  const std::string src = WriteSource(7, {{"manifest.textproto", "m"},
                                          {"weights.pt", RandomBytes(2 * rpc::kArtifactChunkBytes, 3)}});
  ASSERT_THAT(Put(7, src, {"manifest.textproto", "weights.pt"}), IsOk());
  Register(7);
  // One byte flipped in the second chunk of weights.pt, as a disk or a hand could do.
  Exec("UPDATE model_artifact_chunks SET data = set_byte(data, 100, (get_byte(data, 100) + 1) % 256)"
       " WHERE version = 7 AND file_index = 1 AND chunk_no = 1");
  EXPECT_THAT(Fetch(7), StatusIs(absl::StatusCode::kDataLoss,
                                 HasSubstr("weights.pt: sha256")));
  EXPECT_FALSE(fs::exists(root_ + "/cache/7"));
  for (const auto& e : fs::directory_iterator(root_ + "/cache")) ADD_FAILURE() << e.path();
  // A truncated stored file: a chunk missing.
  Exec("DELETE FROM model_artifact_chunks WHERE version = 7 AND file_index = 1 AND chunk_no = 1");
  EXPECT_THAT(Fetch(7), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("weights.pt: received")));
  EXPECT_FALSE(fs::exists(root_ + "/cache/7"));
}

TEST_F(ArtifactStoreTest, LargeArtifactStreamsInBoundedMemory) {
  // Larger than the 50 MB the issue asks for, so the bound below is far from the artifact's size.
  constexpr size_t kBytes = 96u << 20;
  {
    fs::create_directories(fs::path(root_) / "src" / "8");
    std::ofstream out(fs::path(root_) / "src" / "8" / "big.bin", std::ios::binary);
    for (size_t i = 0; i < kBytes; i += rpc::kArtifactChunkBytes) {
      out << RandomBytes(static_cast<size_t>(rpc::kArtifactChunkBytes), i);
    }
  }
  const std::string src = (fs::path(root_) / "src" / "8").string();
  absl::StatusOr<std::string> expected_sha = Sha256File(src + "/big.bin");
  ASSERT_THAT(expected_sha, IsOk());
  Register(8);
  const auto t0 = std::chrono::steady_clock::now();
  PeakHeapSampler sampler;
  ASSERT_THAT(Put(8, src, {"big.bin"}), IsOk());
  const auto t1 = std::chrono::steady_clock::now();
  absl::StatusOr<std::string> dir = Fetch(8);
  const auto t2 = std::chrono::steady_clock::now();
  const int64_t growth = sampler.Stop();
  ASSERT_THAT(dir, IsOk());
  EXPECT_EQ(Sha256File(*dir + "/big.bin").value_or(""), *expected_sha);
  EXPECT_EQ(StoredChunks(), static_cast<int64_t>(kBytes >> 20));
  const auto ms = [](auto d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  };
  std::cout << (kBytes >> 20) << " MiB artifact: put " << ms(t1 - t0) << " ms, fetch "
            << ms(t2 - t1) << " ms, peak heap in use above the start (client and server in this "
            << "process) " << (growth >> 20) << " MiB\n";
  // Holding the artifact whole on either side would add >= 96 MiB.
  EXPECT_LT(growth, int64_t{64} << 20);
}

}  // namespace
}  // namespace fraud::storage
