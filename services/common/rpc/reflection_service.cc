#include "services/common/rpc/reflection_service.h"

#include <grpcpp/impl/server_builder_plugin.h>
#include <grpcpp/impl/server_initializer.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.pb.h"

namespace fraud::proto {
// proto/embed_protoset.cmake writes these from build/fraud.protoset.
extern const unsigned char kDescriptorSet[];
extern const size_t kDescriptorSetSize;
}  // namespace fraud::proto

namespace fraud::rpc {
namespace {

using grpc::reflection::v1alpha::ErrorResponse;

// name() of the plugin gRPC's libgrpc++_reflection registers from a static initializer.
constexpr char kGrpcReflectionPluginName[] = "proto_server_reflection";

void SetError(grpc::StatusCode code, std::string message, ReflectionService::Response* response) {
  ErrorResponse* e = response->mutable_error_response();
  e->set_error_code(static_cast<int32_t>(code));
  e->set_error_message(std::move(message));
}

// Registers the service when the server is built and gives it the final service list (which
// gRPC only exposes to plugins), like gRPC's own reflection plugin but per builder.
class ReflectionPlugin final : public grpc::ServerBuilderPlugin {
 public:
  explicit ReflectionPlugin(ReflectionService* service) : service_(service) {}
  std::string name() override { return "fraud_reflection"; }
  void InitServer(grpc::ServerInitializer* si) override {
    // Not owned: the caller keeps the service alive for the server's lifetime.
    si->RegisterService(std::shared_ptr<grpc::Service>(service_, [](grpc::Service*) {}));
  }
  void Finish(grpc::ServerInitializer* si) override {
    service_->SetServiceList(*si->GetServiceList());
  }
  void ChangeArguments(const std::string& /*name*/, void* /*value*/) override {}
  bool has_sync_methods() const override { return true; }
  bool has_async_methods() const override { return false; }

 private:
  ReflectionService* service_;
};

class ReflectionOption final : public grpc::ServerBuilderOption {
 public:
  explicit ReflectionOption(ReflectionService* service) : service_(service) {}
  void UpdateArguments(grpc::ChannelArguments* /*args*/) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    // Loading libgrpc++_reflection (whose generated code our service derives from) registers
    // gRPC's own reflection plugin with every ServerBuilder; it would claim the same method.
    plugins->erase(std::remove_if(plugins->begin(), plugins->end(),
                                  [](const std::unique_ptr<grpc::ServerBuilderPlugin>& p) {
                                    return p->name() == kGrpcReflectionPluginName;
                                  }),
                   plugins->end());
    plugins->push_back(std::make_unique<ReflectionPlugin>(service_));
  }

 private:
  ReflectionService* service_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ReflectionService>> ReflectionService::Create(
    absl::string_view descriptor_set) {
  google::protobuf::FileDescriptorSet set;
  if (!set.ParseFromArray(descriptor_set.data(), static_cast<int>(descriptor_set.size()))) {
    return absl::InvalidArgumentError("descriptor set does not parse");
  }
  std::unique_ptr<ReflectionService> service(new ReflectionService());
  for (const google::protobuf::FileDescriptorProto& file : set.file()) {
    if (service->files_.count(file.name()) > 0) continue;
    if (service->pool_.BuildFile(file) == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("descriptor set: ", file.name(), " does not build (dependencies first?)"));
    }
    file.SerializeToString(&service->files_[file.name()]);
  }
  return service;
}

grpc::Status ReflectionService::ServerReflectionInfo(
    grpc::ServerContext* context, grpc::ServerReaderWriter<Response, Request>* stream) {
  std::set<std::string> sent;
  Request request;
  while (!context->IsCancelled() && stream->Read(&request)) {
    // A fresh response per request: gRPC's service reused one, so answers accumulated.
    if (!stream->Write(Answer(request, &sent))) break;
  }
  return grpc::Status::OK;
}

void ReflectionService::AddFileWithDependencies(const google::protobuf::FileDescriptor* file,
                                                std::set<std::string>* sent,
                                                Response* response) const {
  // The requested file always; its (transitive) dependencies when not yet sent on this stream.
  std::vector<const google::protobuf::FileDescriptor*> queue = {file};
  bool first = true;
  while (!queue.empty()) {
    const google::protobuf::FileDescriptor* f = queue.front();
    queue.erase(queue.begin());
    if (!first && sent->count(f->name()) > 0) continue;
    first = false;
    sent->insert(f->name());
    auto it = files_.find(f->name());
    if (it != files_.end()) {
      response->mutable_file_descriptor_response()->add_file_descriptor_proto(it->second);
    }
    for (int i = 0; i < f->dependency_count(); ++i) queue.push_back(f->dependency(i));
  }
}

ReflectionService::Response ReflectionService::Answer(const Request& request,
                                                      std::set<std::string>* sent) const {
  Response response;
  response.set_valid_host(request.host());
  *response.mutable_original_request() = request;
  const google::protobuf::FileDescriptor* file = nullptr;
  switch (request.message_request_case()) {
    case Request::kListServices:
      for (const std::string& name : services_) {
        response.mutable_list_services_response()->add_service()->set_name(name);
      }
      return response;
    case Request::kFileByFilename:
      file = pool_.FindFileByName(request.file_by_filename());
      if (file == nullptr) SetError(grpc::StatusCode::NOT_FOUND, "File not found.", &response);
      break;
    case Request::kFileContainingSymbol:
      file = pool_.FindFileContainingSymbol(request.file_containing_symbol());
      if (file == nullptr) SetError(grpc::StatusCode::NOT_FOUND, "Symbol not found.", &response);
      break;
    case Request::kFileContainingExtension: {
      const auto& ext = request.file_containing_extension();
      const google::protobuf::Descriptor* type = pool_.FindMessageTypeByName(ext.containing_type());
      const google::protobuf::FieldDescriptor* field =
          type == nullptr ? nullptr : pool_.FindExtensionByNumber(type, ext.extension_number());
      if (field != nullptr) file = field->file();
      if (file == nullptr) {
        SetError(grpc::StatusCode::NOT_FOUND, "Extension not found.", &response);
      }
      break;
    }
    case Request::kAllExtensionNumbersOfType: {
      const google::protobuf::Descriptor* type =
          pool_.FindMessageTypeByName(request.all_extension_numbers_of_type());
      if (type == nullptr) {
        SetError(grpc::StatusCode::NOT_FOUND, "Type not found.", &response);
        return response;
      }
      std::vector<const google::protobuf::FieldDescriptor*> extensions;
      pool_.FindAllExtensions(type, &extensions);
      auto* out = response.mutable_all_extension_numbers_response();
      out->set_base_type_name(type->full_name());
      for (const auto* e : extensions) out->add_extension_number(e->number());
      return response;
    }
    default:
      SetError(grpc::StatusCode::UNIMPLEMENTED, "Request is not supported.", &response);
      return response;
  }
  if (file != nullptr) AddFileWithDependencies(file, sent, &response);
  return response;
}

std::unique_ptr<grpc::ServerBuilderOption> ReflectionBuilderOption(ReflectionService* service) {
  return std::make_unique<ReflectionOption>(service);
}

absl::string_view EmbeddedDescriptorSet() {
  return absl::string_view(reinterpret_cast<const char*>(proto::kDescriptorSet),
                           proto::kDescriptorSetSize);
}

}  // namespace fraud::rpc
