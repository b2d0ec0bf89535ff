#include "core/message/message.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "core/identity.h"

namespace edgehub::core {

namespace {
flatbuffers::Offset<flatbuffers::String> createString(flatbuffers::FlatBufferBuilder& fbb,
                                                      std::string_view s) {
  return fbb.CreateString(s.data(), s.size());
}
std::string_view view(const flatbuffers::String* s) {
  return s ? std::string_view(s->c_str(), s->size()) : std::string_view();
}
}  // namespace

// --- MessageRef -------------------------------------------------------------------------------

MessageRef MessageRef::adoptCopy(std::span<const uint8_t> bytes) {
  // One allocation: header, then the flatbuffer. aligned_alloc keeps flatbuffers' 8-byte scalars
  // aligned (the header size is a multiple of 16). Allocation failure is fatal (style rule 12).
  const size_t total = (kHeaderSize + bytes.size() + 15) & ~size_t{15};
  void* raw = std::aligned_alloc(16, total);
  HUB_RELEASE_ASSERT(raw != nullptr, "out of memory allocating a message");
  auto* block = new (raw) Block{{1}, static_cast<uint32_t>(bytes.size())};
  std::memcpy(static_cast<uint8_t*>(raw) + kHeaderSize, bytes.data(), bytes.size());
  MessageRef ref;
  ref.block_ = block;
  return ref;
}

void MessageRef::release() noexcept {
  if (block_ == nullptr) return;
  if (block_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    block_->~Block();
    std::free(block_);
  }
  block_ = nullptr;
}

Result<MessageRef> MessageRef::fromBytes(std::span<const uint8_t> bytes) {
  if (bytes.size() > kMaxMessageBytes) {
    return resourceExhausted("message of " + std::to_string(bytes.size()) +
                             " bytes exceeds the limit of " + std::to_string(kMaxMessageBytes));
  }
  if (bytes.size() < 8 || !fb::MessageBufferHasIdentifier(bytes.data())) {
    return invalidArgument("not an edgehub message (missing EHM1 identifier)");
  }
  // flatbuffers reads scalars in place, so the verifier needs the same alignment the message
  // will have; verify the copy, not the caller's buffer.
  MessageRef ref = adoptCopy(bytes);
  flatbuffers::Verifier verifier(ref.data(), bytes.size(), /*max_depth=*/16,
                                 /*max_tables=*/1'000'000);
  if (!fb::VerifyMessageBuffer(verifier)) {
    return invalidArgument("malformed message flatbuffer (verification failed)");
  }
  return ref;
}

// --- system fields ----------------------------------------------------------------------------

std::string_view systemFieldName(SystemField field) {
  switch (field) {
    case SystemField::kMessageId: return "messageId";
    case SystemField::kCorrelationId: return "cid";
    case SystemField::kUserId: return "userId";
    case SystemField::kTo: return "to";
    case SystemField::kContentType: return "contentType";
    case SystemField::kContentEncoding: return "contentEncoding";
    case SystemField::kOutputName: return "outputName";
    case SystemField::kInputName: return "inputName";
    case SystemField::kExpiryTimeUtc: return "absolute-expiry-time";
    case SystemField::kCreationTime: return "creationTime";
    case SystemField::kComponentName: return "dt-subject";
    case SystemField::kInterfaceId: return "iothub-interface-id";
    case SystemField::kModelId: return "modelId";
    case SystemField::kMessageSchema: return "messageSchema";
    case SystemField::kOperation: return "operation";
    case SystemField::kMessageType: return "messageType";
    case SystemField::kConnectionDeviceId: return "connectionDeviceId";
    case SystemField::kConnectionModuleId: return "connectionModuleId";
    case SystemField::kEdgeMessageId: return "edgeMessageId";
    case SystemField::kOriginInterface: return "edgeHubOriginInterface";
    case SystemField::kCount: break;
  }
  return "";
}

std::optional<std::string_view> systemFieldValue(const fb::Message& message, SystemField field) {
  const fb::SystemProperties* sp = message.system();
  const flatbuffers::String* s = nullptr;
  switch (field) {
    case SystemField::kMessageId: s = sp->message_id(); break;
    case SystemField::kCorrelationId: s = sp->correlation_id(); break;
    case SystemField::kUserId: s = sp->user_id(); break;
    case SystemField::kTo: s = sp->to(); break;
    case SystemField::kContentType: s = sp->content_type(); break;
    case SystemField::kContentEncoding: s = sp->content_encoding(); break;
    case SystemField::kOutputName: s = sp->output_name(); break;
    case SystemField::kInputName: s = sp->input_name(); break;
    case SystemField::kExpiryTimeUtc: s = sp->expiry_time_utc(); break;
    case SystemField::kCreationTime: s = sp->creation_time(); break;
    case SystemField::kComponentName: s = sp->component_name(); break;
    case SystemField::kInterfaceId: s = sp->interface_id(); break;
    case SystemField::kModelId: s = sp->model_id(); break;
    case SystemField::kMessageSchema: s = sp->message_schema(); break;
    case SystemField::kOperation: s = sp->operation(); break;
    case SystemField::kMessageType: s = sp->message_type(); break;
    case SystemField::kConnectionDeviceId: s = sp->connection_device_id(); break;
    case SystemField::kConnectionModuleId: s = sp->connection_module_id(); break;
    case SystemField::kEdgeMessageId: s = sp->edge_message_id(); break;
    case SystemField::kOriginInterface: s = sp->origin_interface(); break;
    case SystemField::kCount: break;
  }
  if (s == nullptr) return std::nullopt;
  return view(s);
}

namespace {
size_t propertiesSize(const flatbuffers::Vector<flatbuffers::Offset<fb::Property>>* props) {
  size_t n = 0;
  if (props == nullptr) return 0;
  for (const fb::Property* p : *props) n += p->name()->size() + (p->value() ? p->value()->size() : 0);
  return n;
}
}  // namespace

size_t routedMessageSize(const fb::Message& message) {
  size_t n = message.body() ? message.body()->size() : 0;
  n += propertiesSize(message.properties());
  for (size_t f = 0; f < static_cast<size_t>(SystemField::kCount); ++f) {
    const auto field = static_cast<SystemField>(f);
    if (auto v = systemFieldValue(message, field)) n += systemFieldName(field).size() + v->size();
  }
  return n + propertiesSize(message.system()->extra());
}

const fb::Property* findProperty(const fb::Message& message, std::string_view name) {
  if (message.properties() == nullptr) return nullptr;
  for (const fb::Property* p : *message.properties()) {
    if (view(p->name()) == name) return p;
  }
  return nullptr;
}

// --- MessageBuilder ---------------------------------------------------------------------------

MessageBuilder::MessageBuilder(size_t initial_capacity) : fbb_(initial_capacity) { reset(); }

void MessageBuilder::reset() {
  fbb_.Clear();
  sequence_ = 0;
  enqueued_time_ms_ = 0;
  origin_ = {};
  body_ = {};
  for (auto& s : system_) s = {};
  properties_.clear();
  system_extra_.clear();
}

void MessageBuilder::setOrigin(const Identity& origin) {
  auto device = createString(fbb_, origin.deviceId());
  flatbuffers::Offset<flatbuffers::String> module;
  if (origin.isModule()) module = createString(fbb_, origin.moduleId());
  origin_ = fb::CreateOrigin(fbb_, origin.isModule() ? fb::IdentityKind::Module : fb::IdentityKind::Device,
                             device, module);
}

void MessageBuilder::setSystem(SystemField field, std::string_view value) {
  HUB_ASSERT(field < SystemField::kCount, "bad system field");
  system_[static_cast<size_t>(field)] = createString(fbb_, value);
}

MessageBuilder::PropertyOffset MessageBuilder::createProperty(std::string_view name,
                                                             std::optional<std::string_view> value) {
  auto n = createString(fbb_, name);
  flatbuffers::Offset<flatbuffers::String> v;  // null offset = null-valued property
  if (value) v = createString(fbb_, *value);
  return fb::CreateProperty(fbb_, n, v);
}

void MessageBuilder::addSystemExtra(std::string_view name, std::optional<std::string_view> value) {
  system_extra_.push_back(createProperty(name, value));
}

void MessageBuilder::addProperty(std::string_view name, std::optional<std::string_view> value) {
  properties_.push_back(createProperty(name, value));
}

void MessageBuilder::setBody(std::span<const uint8_t> body) {
  body_ = fbb_.CreateVector(body.data(), body.size());
}

Result<MessageRef> MessageBuilder::finish() {
  if (origin_.IsNull()) return failedPrecondition("message has no origin identity");
  flatbuffers::Offset<flatbuffers::Vector<PropertyOffset>> extra;
  if (!system_extra_.empty()) extra = fbb_.CreateVector(system_extra_);
  flatbuffers::Offset<flatbuffers::Vector<PropertyOffset>> props;
  if (!properties_.empty()) props = fbb_.CreateVector(properties_);

  auto s = [this](SystemField f) { return system_[static_cast<size_t>(f)]; };
  fb::SystemPropertiesBuilder sp(fbb_);
  sp.add_message_id(s(SystemField::kMessageId));
  sp.add_correlation_id(s(SystemField::kCorrelationId));
  sp.add_user_id(s(SystemField::kUserId));
  sp.add_to(s(SystemField::kTo));
  sp.add_content_type(s(SystemField::kContentType));
  sp.add_content_encoding(s(SystemField::kContentEncoding));
  sp.add_output_name(s(SystemField::kOutputName));
  sp.add_input_name(s(SystemField::kInputName));
  sp.add_expiry_time_utc(s(SystemField::kExpiryTimeUtc));
  sp.add_creation_time(s(SystemField::kCreationTime));
  sp.add_component_name(s(SystemField::kComponentName));
  sp.add_interface_id(s(SystemField::kInterfaceId));
  sp.add_model_id(s(SystemField::kModelId));
  sp.add_message_schema(s(SystemField::kMessageSchema));
  sp.add_operation(s(SystemField::kOperation));
  sp.add_message_type(s(SystemField::kMessageType));
  sp.add_connection_device_id(s(SystemField::kConnectionDeviceId));
  sp.add_connection_module_id(s(SystemField::kConnectionModuleId));
  sp.add_edge_message_id(s(SystemField::kEdgeMessageId));
  sp.add_origin_interface(s(SystemField::kOriginInterface));
  sp.add_extra(extra);
  auto system = sp.Finish();

  fb::MessageBuilder mb(fbb_);
  mb.add_sequence(sequence_);
  mb.add_enqueued_time_ms(enqueued_time_ms_);
  mb.add_origin(origin_);
  mb.add_system(system);
  mb.add_properties(props);
  mb.add_body(body_);
  fb::FinishMessageBuffer(fbb_, mb.Finish());

  if (fbb_.GetSize() > kMaxMessageBytes) {
    return resourceExhausted("message of " + std::to_string(fbb_.GetSize()) +
                             " bytes exceeds the limit of " + std::to_string(kMaxMessageBytes));
  }
  return MessageRef::adoptCopy({fbb_.GetBufferPointer(), fbb_.GetSize()});
}

}  // namespace edgehub::core
