#pragma once
// The message model in memory: MessageRef, an immutable, intrusively refcounted, single
// allocation holding one finished and verified flatbuffer (core/message/message.fbs).
//
// Verification happens exactly once, where bytes enter from outside the process's own builder
// (the store's read-back, a file, a test): MessageRef::fromBytes runs flatbuffers::Verifier.
// Messages built by MessageBuilder are trusted by construction. There is no other way to make a
// MessageRef, so unverified bytes cannot reach routing or delivery (style rule 36).
//
// Thread-safety: a MessageRef may be copied, moved and read from any thread; the refcount is
// atomic because messages cross from IO loops to the store thread. The bytes never change after
// construction. Fan-out to N destinations costs N increments, never copies.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "core/message/message_generated.h"
#include "core/status.h"

namespace edgehub::core {

class Identity;

// The largest message (the whole flatbuffer) the hub accepts. IoT Hub's own limit is 256 KiB for
// device-to-cloud; module-to-module traffic may be larger, so the hub-wide bound is generous but
// finite (bad input must never make us allocate without bound).
inline constexpr size_t kMaxMessageBytes = 16 * 1024 * 1024;

class MessageRef {
 public:
  MessageRef() = default;
  MessageRef(const MessageRef& other) noexcept : block_(other.block_) { retain(); }
  MessageRef(MessageRef&& other) noexcept : block_(other.block_) { other.block_ = nullptr; }
  MessageRef& operator=(const MessageRef& other) noexcept {
    if (this != &other) {
      other.retain();
      release();
      block_ = other.block_;
    }
    return *this;
  }
  MessageRef& operator=(MessageRef&& other) noexcept {
    if (this != &other) {
      release();
      block_ = other.block_;
      other.block_ = nullptr;
    }
    return *this;
  }
  ~MessageRef() { release(); }

  // Verifies `bytes` as a Message flatbuffer and copies them into a new MessageRef.
  // Errors: kInvalidArgument (not a valid message, wrong identifier), kResourceExhausted (too big).
  static Result<MessageRef> fromBytes(std::span<const uint8_t> bytes);

  bool empty() const { return block_ == nullptr; }
  explicit operator bool() const { return block_ != nullptr; }

  // REQUIRES: !empty().
  const fb::Message& message() const { return *fb::GetMessage(data()); }
  const fb::Message* operator->() const { return &message(); }
  std::span<const uint8_t> bytes() const { return {data(), block_->size}; }
  // Number of MessageRefs sharing this message (for tests and assertions).
  uint32_t useCountForTest() const { return block_ ? block_->refs.load() : 0; }

 private:
  friend class MessageBuilder;
  struct Block {
    std::atomic<uint32_t> refs;
    uint32_t size;
    // The flatbuffer bytes follow, aligned for flatbuffers' largest scalar.
  };
  static constexpr size_t kHeaderSize = (sizeof(Block) + 15) & ~size_t{15};

  static MessageRef adoptCopy(std::span<const uint8_t> bytes);
  const uint8_t* data() const { return reinterpret_cast<const uint8_t*>(block_) + kHeaderSize; }
  void retain() const noexcept {
    if (block_) block_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  void release() noexcept;

  Block* block_ = nullptr;
};

// The system properties that have a field of their own in the schema.
enum class SystemField : uint8_t {
  kMessageId,
  kCorrelationId,
  kUserId,
  kTo,
  kContentType,
  kContentEncoding,
  kOutputName,
  kInputName,
  kExpiryTimeUtc,
  kCreationTime,
  kComponentName,
  kInterfaceId,
  kModelId,
  kMessageSchema,
  kOperation,
  kMessageType,
  kConnectionDeviceId,
  kConnectionModuleId,
  kEdgeMessageId,
  kOriginInterface,
  kCount,
};

// The routing/system-property key of a field ("messageId", "cid", ...; routing-language.md §12).
std::string_view systemFieldName(SystemField field);
// The value of a field in a message, or nullopt if absent.
std::optional<std::string_view> systemFieldValue(const fb::Message& message, SystemField field);
// A message's size as IoT Hub and edgeHub count it (iothub-mqtt-dialect.md section 8): body
// bytes plus every application and system property key and value.
size_t routedMessageSize(const fb::Message& message);

// Builds messages. Owns one FlatBufferBuilder that is reused (Clear()) for every message, so a
// connection that keeps one MessageBuilder allocates nothing per message but the MessageRef.
//
// Thread-safety: none; one builder per thread/connection. Usage:
//   builder.reset(); builder.setOrigin(id); builder.addProperty(...); ...; builder.finish();
// Strings are copied into the builder immediately, so arguments need not outlive the call.
class MessageBuilder {
 public:
  explicit MessageBuilder(size_t initial_capacity = 1024);
  MessageBuilder(const MessageBuilder&) = delete;
  MessageBuilder& operator=(const MessageBuilder&) = delete;

  void reset();
  void setSequence(uint64_t sequence) { sequence_ = sequence; }
  void setEnqueuedTimeMs(int64_t ms) { enqueued_time_ms_ = ms; }
  void setOrigin(const Identity& origin);
  // Sets a known system property; setting it twice keeps the last value.
  void setSystem(SystemField field, std::string_view value);
  // Adds a system property without a field of its own. nullopt = null-valued.
  void addSystemExtra(std::string_view name, std::optional<std::string_view> value);
  // Adds an application property. nullopt = null-valued.
  void addProperty(std::string_view name, std::optional<std::string_view> value);
  void setBody(std::span<const uint8_t> body);
  void setBody(std::string_view body) {
    setBody(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(body.data()), body.size()));
  }

  // Finishes the message and copies it into a MessageRef. Errors: kFailedPrecondition (no
  // origin set), kResourceExhausted (larger than kMaxMessageBytes). The builder must be reset()
  // before the next message.
  Result<MessageRef> finish();

 private:
  using PropertyOffset = flatbuffers::Offset<fb::Property>;
  PropertyOffset createProperty(std::string_view name, std::optional<std::string_view> value);

  flatbuffers::FlatBufferBuilder fbb_;
  uint64_t sequence_ = 0;
  int64_t enqueued_time_ms_ = 0;
  flatbuffers::Offset<fb::Origin> origin_;
  flatbuffers::Offset<flatbuffers::Vector<uint8_t>> body_;
  flatbuffers::Offset<flatbuffers::String> system_[static_cast<size_t>(SystemField::kCount)];
  // Reused across messages: clear() keeps the capacity.
  std::vector<PropertyOffset> properties_;
  std::vector<PropertyOffset> system_extra_;
};

// Looks up an application property by exact name (first match), for tests and tools.
// Routing does its own case-insensitive lookups over the same data.
const fb::Property* findProperty(const fb::Message& message, std::string_view name);

}  // namespace edgehub::core
