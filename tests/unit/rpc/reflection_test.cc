// Server reflection as grpcurl uses it: a raw grpc.reflection.v1alpha stream asking for several
// symbols in a row (gRPC's own service repeated earlier files in every answer, so grpcurl's
// `describe` with no symbol failed), and the proto comments that `describe` prints.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "services/common/rpc/channel.h"
#include "services/common/rpc/reflection_service.h"
#include "tests/testing/in_process_server.h"
#include "tests/unit/rpc/test_services.h"

namespace fraud::rpc {
namespace {

using fraud::testing::InProcessServer;
using fraud::testing::IsOk;
using fraud::testing::SleepyInference;
namespace refl = grpc::reflection::v1alpha;

std::vector<google::protobuf::FileDescriptorProto> Files(const refl::ServerReflectionResponse& r) {
  std::vector<google::protobuf::FileDescriptorProto> out;
  for (const std::string& bytes : r.file_descriptor_response().file_descriptor_proto()) {
    out.emplace_back();
    EXPECT_TRUE(out.back().ParseFromString(bytes));
  }
  return out;
}

// The leading comment of `symbol` (a service or method) in `file`, from its source info.
std::string CommentOf(const google::protobuf::FileDescriptorProto& file, const std::string& service,
                      const std::string& method) {
  for (int s = 0; s < file.service_size(); ++s) {
    if (file.service(s).name() != service) continue;
    std::vector<int> path = {6, s};  // FileDescriptorProto.service = 6
    if (!method.empty()) {
      for (int m = 0; m < file.service(s).method_size(); ++m) {
        if (file.service(s).method(m).name() == method) path = {6, s, 2, m};  // method = 2
      }
    }
    for (const auto& loc : file.source_code_info().location()) {
      if (std::vector<int>(loc.path().begin(), loc.path().end()) == path) {
        return loc.leading_comments();
      }
    }
  }
  return "";
}

class ReflectionTest : public ::testing::Test {
 protected:
  using Stream =
      grpc::ClientReaderWriter<refl::ServerReflectionRequest, refl::ServerReflectionResponse>;
  void SetUp() override {
    ASSERT_THAT(server_.Start(), IsOk());
    stub_ = refl::ServerReflection::NewStub(server_.channel());
    SetDeadline(&ctx_, absl::Seconds(10));
    stream_ = stub_->ServerReflectionInfo(&ctx_);
  }
  // One request on the stream and its answer.
  refl::ServerReflectionResponse Ask(const refl::ServerReflectionRequest& req) {
    refl::ServerReflectionResponse resp;
    EXPECT_TRUE(stream_->Write(req));
    EXPECT_TRUE(stream_->Read(&resp));
    return resp;
  }
  void TearDown() override {
    stream_->WritesDone();
    EXPECT_TRUE(stream_->Finish().ok());
  }

  SleepyInference service_;
  InProcessServer server_{{&service_}};
  std::unique_ptr<refl::ServerReflection::Stub> stub_;
  grpc::ClientContext ctx_;
  std::unique_ptr<Stream> stream_;
};

TEST_F(ReflectionTest, SymbolsAskedInARowSendEachDependencyOnceAndAllResolve) {
  // What `grpcurl describe` does: list, then every service (the reflection service included).
  const std::vector<std::pair<std::string, std::string>> asks = {
      {"fraud.inference.v1.InferenceService", "fraud/inference/v1/inference.proto"},
      {"grpc.health.v1.Health", "grpc/health/v1/health.proto"},
      {"grpc.reflection.v1alpha.ServerReflection", "grpc/reflection/v1alpha/reflection.proto"},
      {"fraud.inference.v1.PredictRequest", "fraud/inference/v1/inference.proto"}};
  std::map<std::string, int> times_sent;
  google::protobuf::DescriptorPool client_pool;  // what a client builds from the answers
  for (const auto& [symbol, file] : asks) {
    refl::ServerReflectionRequest req;
    req.set_file_containing_symbol(symbol);
    const refl::ServerReflectionResponse resp = Ask(req);
    ASSERT_FALSE(resp.has_error_response())
        << symbol << ": " << resp.error_response().error_message();
    const auto files = Files(resp);
    ASSERT_FALSE(files.empty()) << symbol;
    EXPECT_EQ(files[0].name(), file) << symbol;
    for (size_t i = 1; i < files.size(); ++i) ++times_sent[files[i].name()];
    // Build every received file once its dependencies are built, as grpcurl does; everything
    // must resolve from what this stream has sent so far.
    std::vector<google::protobuf::FileDescriptorProto> pending(files.begin(), files.end());
    for (bool progress = true; progress && !pending.empty();) {
      progress = false;
      for (auto it = pending.begin(); it != pending.end();) {
        bool ready = client_pool.FindFileByName(it->name()) == nullptr;
        for (const std::string& dep : it->dependency()) {
          ready = ready && client_pool.FindFileByName(dep) != nullptr;
        }
        if (client_pool.FindFileByName(it->name()) != nullptr) {
          it = pending.erase(it);
        } else if (ready) {
          EXPECT_NE(client_pool.BuildFile(*it), nullptr) << it->name();
          it = pending.erase(it);
          progress = true;
        } else {
          ++it;
        }
      }
    }
    EXPECT_TRUE(pending.empty()) << symbol << ": " << pending.size() << " files do not resolve";
    EXPECT_NE(client_pool.FindFileContainingSymbol(symbol), nullptr) << symbol;
  }
  for (const auto& [name, n] : times_sent)
    EXPECT_EQ(n, 1) << name << " sent as a dependency " << n << " times";
  EXPECT_GT(times_sent.count("fraud/common/v1/types.proto"), 0u);
}

TEST_F(ReflectionTest, DescribeOfAMethodCarriesItsProtoComment) {
  refl::ServerReflectionRequest req;
  req.set_file_containing_symbol("fraud.inference.v1.InferenceService.Predict");
  const auto files = Files(Ask(req));
  ASSERT_FALSE(files.empty());
  EXPECT_THAT(CommentOf(files[0], "InferenceService", "Predict"),
              ::testing::HasSubstr("Scores a packed batch of rows"));
}

TEST_F(ReflectionTest, UnknownSymbolsAndFilesAreNotFoundAndTheStreamGoesOn) {
  refl::ServerReflectionRequest req;
  req.set_file_containing_symbol("fraud.nope.v1.Nothing");
  EXPECT_EQ(Ask(req).error_response().error_code(), static_cast<int>(grpc::StatusCode::NOT_FOUND));
  req.set_file_by_filename("no/such.proto");
  EXPECT_EQ(Ask(req).error_response().error_code(), static_cast<int>(grpc::StatusCode::NOT_FOUND));
  req.set_list_services("");
  std::vector<std::string> names;
  const refl::ServerReflectionResponse listed = Ask(req);
  for (const auto& s : listed.list_services_response().service()) names.push_back(s.name());
  EXPECT_THAT(names, ::testing::UnorderedElementsAre("fraud.inference.v1.InferenceService",
                                                     "grpc.health.v1.Health",
                                                     "grpc.reflection.v1alpha.ServerReflection"));
}

TEST(ProtosetTest, TheBuildPublishesTheDescriptorSetWithComments) {
  std::ifstream in(FRAUD_PROTOSET_PATH, std::ios::binary);
  ASSERT_TRUE(in) << FRAUD_PROTOSET_PATH;
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(ss.str(), std::string(EmbeddedDescriptorSet()));
  google::protobuf::FileDescriptorSet set;
  ASSERT_TRUE(set.ParseFromString(ss.str()));
  bool found = false;
  for (const auto& f : set.file()) {
    if (f.name() == "fraud/storage/v1/storage.proto") {
      found = true;
      EXPECT_GT(f.source_code_info().location_size(), 100);
    }
  }
  EXPECT_TRUE(found);
}

}  // namespace
}  // namespace fraud::rpc
