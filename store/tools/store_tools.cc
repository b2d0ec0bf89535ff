#include "store/tools/store_tools.h"

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <ostream>
#include <string_view>

#include "core/base64.h"
#include "core/message/message.h"
#include "core/twin/twin.h"
#include "store/rocks_store.h"

namespace edgehub::store {

namespace {

std::string storePath(const std::string& data_dir) {
  std::string p = data_dir;
  p.append("/store");
  return p;
}

core::Result<std::unique_ptr<RocksStore>> openReadOnly(const std::string& data_dir,
                                                       const core::TimeSource& time) {
  RocksStore::Options options;
  options.path = storePath(data_dir);
  options.read_only = true;
  return RocksStore::open(options, time);
}

// Strict UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
bool isUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t len;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += len;
  }
  return true;
}

std::string formatTime(int64_t ms) {
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

std::string_view view(const flatbuffers::String* s) {
  return s ? std::string_view(s->c_str(), s->size()) : std::string_view();
}

void printProperty(std::ostream& out, const fb::Property* p) {
  out << "    " << view(p->name()) << " = ";
  if (p->value() == nullptr) {
    out << "(null)\n";
  } else {
    out << '"' << view(p->value()) << "\"\n";
  }
}

void printMessage(std::ostream& out, const StoredMessage& m, uint8_t priority, int64_t now_ms) {
  const fb::Message& msg = m.message.message();
  const int64_t enq = msg.enqueued_time_ms();
  out << "sequence " << m.sequence << " (priority class " << static_cast<int>(priority) << ")\n";
  out << "  enqueued: " << formatTime(enq) << " (" << (now_ms - enq) / 1000 << " s ago)\n";
  if (m.expiry_ms == core::kNoExpiry) {
    out << "  expires: never\n";
  } else {
    out << "  expires: " << formatTime(m.expiry_ms) << "\n";
  }
  const fb::Origin* origin = msg.origin();
  out << "  origin: " << view(origin->device_id());
  if (origin->module_id() != nullptr && origin->module_id()->size() > 0) {
    out << "/" << view(origin->module_id());
  }
  out << "\n  system properties:\n";
  for (size_t f = 0; f < static_cast<size_t>(core::SystemField::kCount); ++f) {
    const auto field = static_cast<core::SystemField>(f);
    if (auto v = core::systemFieldValue(msg, field)) {
      out << "    " << core::systemFieldName(field) << " = \"" << *v << "\"\n";
    }
  }
  if (msg.system()->extra() != nullptr) {
    for (const fb::Property* p : *msg.system()->extra()) printProperty(out, p);
  }
  out << "  application properties:\n";
  if (msg.properties() != nullptr) {
    for (const fb::Property* p : *msg.properties()) printProperty(out, p);
  }
  std::string_view body;
  if (msg.body() != nullptr) {
    body = std::string_view(reinterpret_cast<const char*>(msg.body()->data()), msg.body()->size());
  }
  if (isUtf8(body)) {
    out << "  body (" << body.size() << " bytes, text): " << body << "\n";
  } else {
    out << "  body (" << body.size() << " bytes, base64): " << core::base64Encode(body) << "\n";
  }
}

}  // namespace

int runStoreStats(const std::string& data_dir, std::ostream& out, std::ostream& err) {
  core::RealTimeSource time;
  auto store = openReadOnly(data_dir, time);
  if (!store.isOk()) {
    err << "edgehub: " << store.status().message() << "\n";
    return 1;
  }
  const StoreStats s = store.value()->stats();
  out << "store " << storePath(data_dir) << ": " << s.messages << " messages, " << s.bytes
      << " bytes\n";
  char line[512];
  std::snprintf(line, sizeof line, "%-50s %8s %10s %12s %14s\n", "endpoint", "priority", "count",
                "bytes", "oldest_age_s");
  out << line;
  for (const QueueStats& q : s.queues) {
    if (q.count == 0) continue;
    std::snprintf(line, sizeof line, "%-50s %8d %10llu %12llu %14.1f\n", q.endpoint.c_str(),
                  static_cast<int>(q.priority_class), static_cast<unsigned long long>(q.count),
                  static_cast<unsigned long long>(q.bytes), q.oldest_age_ms / 1000.0);
    out << line;
  }
  out << "drops since the store was created: ttl_expiry=" << s.dropped_ttl_expiry
      << " store_full=" << s.dropped_store_full << "\n";
  return 0;
}

int runStorePeek(const std::string& data_dir, const std::string& endpoint_name, size_t n,
                 std::ostream& out, std::ostream& err) {
  core::RealTimeSource time;
  auto store = openReadOnly(data_dir, time);
  if (!store.isOk()) {
    err << "edgehub: " << store.status().message() << "\n";
    return 1;
  }
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             time.systemTime().time_since_epoch())
                             .count();
  size_t printed = 0;
  std::vector<StoredMessage> batch;
  for (uint8_t prio = 0; prio < core::kPriorityClasses && printed < n; ++prio) {
    batch.clear();
    core::Status s = store.value()->readQueueByName(endpoint_name, prio, 0, n - printed, batch);
    if (!s.isOk()) {
      err << "edgehub: " << s.message() << "\n";
      return 1;
    }
    for (const StoredMessage& m : batch) {
      printMessage(out, m, prio, now_ms);
      ++printed;
    }
  }
  out << printed << " message(s) shown for " << endpoint_name << "\n";
  const uint64_t damaged = store.value()->stats().corrupt_skipped;
  if (damaged != 0) out << damaged << " damaged entr" << (damaged == 1 ? "y" : "ies") << " skipped\n";
  return 0;
}

int runTwinShow(const std::string& data_dir, const std::string& client_id, std::ostream& out, std::ostream& err) {
  core::RealTimeSource time;
  auto store = openReadOnly(data_dir, time);
  if (!store.isOk()) {
    err << "edgehub: " << store.status().message() << "\n";
    return 1;
  }
  std::vector<std::pair<std::string, std::string>> twins;
  if (core::Status s = store.value()->loadTwins(twins); !s.isOk()) {
    err << "edgehub: " << s.message() << "\n";
    return 1;
  }
  for (const auto& [id, document] : twins) {
    if (id != client_id) continue;
    auto twin = core::twin::Twin::parse(document);
    if (!twin.isOk()) {
      err << "edgehub: the twin of " << client_id << " is damaged: " << twin.status().message() << "\n";
      return 1;
    }
    out << twin.value().getResponse() << "\n";
    return 0;
  }
  err << "edgehub: no twin for " << client_id << " in " << data_dir << "\n";
  return 1;
}

}  // namespace edgehub::store
