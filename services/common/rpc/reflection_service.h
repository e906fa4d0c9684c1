// gRPC server reflection (grpc.reflection.v1alpha, the only version gRPC 1.51's clients and
// grpcurl <= 1.8 speak) served from the project's own descriptor set.
//
// Why not gRPC's plugin: (1) it reuses one response message on a stream, so each
// file_containing_symbol answer repeats every file sent before it, and `grpcurl describe` with
// no symbol fails with "Symbol not found" (grpc/grpc#18009); (2) it serves the descriptors
// compiled into the binary, which carry no comments. This service answers from
// build/fraud.protoset (protoc --include_imports --include_source_info, embedded at build time),
// so `grpcurl describe fraud.inference.v1.InferenceService.Predict` prints the proto comment, and
// each answer holds the requested file plus those of its dependencies not yet sent on the stream
// (grpc-go's rule).
//
//   auto reflection = ReflectionService::Create(EmbeddedDescriptorSet());
//   builder.SetOption(ReflectionBuilderOption(reflection->get()));   // lists what is registered
//
// Thread-safe after Create (the service list is set once, before the server starts).
#pragma once

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/server_builder_option.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"

namespace fraud::rpc {

class ReflectionService final : public grpc::reflection::v1alpha::ServerReflection::Service {
 public:
  using Request = grpc::reflection::v1alpha::ServerReflectionRequest;
  using Response = grpc::reflection::v1alpha::ServerReflectionResponse;

  // `descriptor_set` is a serialized google.protobuf.FileDescriptorSet whose files come after
  // their dependencies (protoc --include_imports writes them so). InvalidArgument when it does not
  // parse or a file does not build.
  static absl::StatusOr<std::unique_ptr<ReflectionService>> Create(
      absl::string_view descriptor_set);

  // The names list_services answers with (the server's registered services).
  void SetServiceList(std::vector<std::string> services) { services_ = std::move(services); }

  grpc::Status ServerReflectionInfo(grpc::ServerContext* context,
                                    grpc::ServerReaderWriter<Response, Request>* stream) override;

  // Answers one request; `sent` holds the files already sent on this stream and is updated.
  // Unknown symbols and files are an error_response with NOT_FOUND, as in gRPC's own service.
  Response Answer(const Request& request, std::set<std::string>* sent) const;

 private:
  ReflectionService() = default;
  void AddFileWithDependencies(const google::protobuf::FileDescriptor* file,
                               std::set<std::string>* sent, Response* response) const;

  google::protobuf::DescriptorPool pool_;
  // File name -> serialized FileDescriptorProto as protoc wrote it (comments included).
  std::map<std::string, std::string> files_;
  std::vector<std::string> services_;
};

// A ServerBuilder option that registers `service` on the server it builds and hands it the names
// of every service the server ends up with. `service` must outlive the server.
std::unique_ptr<grpc::ServerBuilderOption> ReflectionBuilderOption(ReflectionService* service);

// The project's descriptor set (proto/fraud/**, grpc.health.v1, grpc.reflection.v1alpha and
// their imports, with source info), embedded in every binary at build time.
absl::string_view EmbeddedDescriptorSet();

}  // namespace fraud::rpc
