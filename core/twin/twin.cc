#include "core/twin/twin.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <utility>

#include <nlohmann/json.hpp>

#include "core/config/json_util.h"

namespace edgehub::core::twin {
namespace {

// ordered_json keeps member order, so documents come back the way modules wrote them.
using Json = nlohmann::ordered_json;

constexpr const char* kLastUpdated = "$lastUpdated";
constexpr const char* kLastUpdatedVersion = "$lastUpdatedVersion";
constexpr const char* kVersion = "$version";
constexpr const char* kMetadata = "$metadata";

// Stored form, version 1:
// {"schema":1,"desired":{"version":D,"properties":{..},"metadata":{..}},"reported":{..}
//  [,"cloud":{"reported":{..},"desired":true|false}]}
// where metadata nodes hold "$lastUpdated" as ms since the epoch (and, on the desired side,
// "$lastUpdatedVersion"), plus one node per property, objects recursively. "cloud" (the upstream
// sync state) is written only once the twin has synced with the cloud; a twin without it has
// never been acknowledged upstream.
constexpr int64_t kStoredSchema = 1;
// Wrapper levels around a section in the stored form (root, section object), plus one because a
// metadata tree is one level deeper than its section (each leaf property has a node).
constexpr int kMaxStoredDepth = kMaxTwinDepth + 3;
// A stored version beyond this is damage, not history; it also keeps `version + 1` from ever
// overflowing.
constexpr int64_t kMaxStoredVersion = int64_t{1} << 62;
// 9999-12-31T23:59:59.999Z: the last instant a four-digit year can show.
constexpr int64_t kMaxTimestampMs = 253'402'300'799'999;
// How much of a name or path an error message shows: never echo a 1 KiB name, let alone a
// 10-level path of them.
constexpr size_t kMaxShownBytes = 64;

// Compact JSON. The replace handler means invalid UTF-8 cannot make dump() throw (we only hold
// parsed, hence valid, text; this is belt and braces).
std::string dumpCompact(const Json& value) {
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

// `s` as a JSON string literal, cut to kMaxShownBytes, for error messages.
std::string shown(std::string_view s) {
  const bool cut = s.size() > kMaxShownBytes;
  const std::string text = dumpCompact(Json(std::string(s.substr(0, kMaxShownBytes))));
  return cut ? text + "..." : text;
}

std::string childPath(const std::string& path, std::string_view key) {
  if (path.empty()) return std::string(key);
  std::string out = path;
  out += '.';
  out += key;
  return out;
}

// " at <path>" for messages about a value, empty at the section root.
std::string at(const std::string& path) { return path.empty() ? "" : " at " + shown(path); }

// True if objects/arrays nest deeper than `limit` in `text`: checked before parsing so that
// hostile input is refused cheaply and no recursive walk later (dump, validation, merge) goes deep.
bool deeperThan(std::string_view text, int limit) { return config_internal::findTooDeep(text, limit).has_value(); }

// nlohmann's what() starts with "[json.exception.parse_error.101] "; drop that tag.
std::string parseErrorReason(const std::exception& e) {
  const std::string_view what = e.what();
  const size_t tag_end = what.find("] ");
  return std::string(tag_end == std::string_view::npos ? what : what.substr(tag_end + 2));
}

// Parses a patch or desired document: a JSON object within the input limits.
// `max_bytes` and `max_depth` are larger only for whole cloud twins (sections wrapped in an
// object, with $metadata one level deeper than the properties it describes).
Result<Json> parseObjectText(std::string_view text, std::string_view what, size_t max_bytes = kMaxInputTextBytes,
                             int max_depth = kMaxTwinDepth) {
  if (text.size() > max_bytes) {
    return invalidArgument(std::string(what) + " is too large: " + std::to_string(text.size()) +
                           " bytes of text (limit " + std::to_string(max_bytes) + ")");
  }
  if (deeperThan(text, max_depth)) {
    return invalidArgument(std::string(what) + " is nested deeper than " +
                           std::to_string(max_depth) + " levels");
  }
  Json value;
  try {
    value = Json::parse(text.begin(), text.end());
  } catch (const Json::parse_error& e) {
    return invalidArgument(std::string(what) + " is not valid JSON: " + parseErrorReason(e));
  }
  if (!value.is_object()) {
    return invalidArgument(std::string(what) + " must be a JSON object, got " +
                           std::string(value.type_name()));
  }
  return value;
}

enum class NullMembers { kAllowed, kRefused };

Status checkName(std::string_view name, const std::string& path, std::string_view what) {
  auto refuse = [&](std::string_view why) {
    return invalidArgument(std::string(what) + ": property name " + shown(name) + at(path) + " " +
                           std::string(why));
  };
  if (name.empty()) return invalidArgument(std::string(what) + ": empty property name" + at(path));
  if (name.size() > kMaxPropertyNameBytes) {
    return refuse("is longer than " + std::to_string(kMaxPropertyNameBytes) + " bytes");
  }
  for (size_t i = 0; i < name.size(); ++i) {
    const auto c = static_cast<unsigned char>(name[i]);
    if (c < 0x20 || c == 0x7f) return refuse("contains a control character");
    // C1 controls U+0080..U+009F are 0xC2 0x80..0x9F in UTF-8 (the parser has checked UTF-8).
    if (c == 0xc2 && i + 1 < name.size()) {
      const auto next = static_cast<unsigned char>(name[i + 1]);
      if (next >= 0x80 && next <= 0x9f) return refuse("contains a control character");
    }
    if (c == '$') return refuse("contains '$'");
    if (c == '.') return refuse("contains '.'");
    if (c == ' ') return refuse("contains a space");
  }
  return Status::ok();
}

// Checks the value limits below `value`, whose depth (if it is an object or array) is `depth`.
// Recursion is bounded: every caller has checked the raw nesting first (deeperThan).
Status checkValue(const Json& value, int depth, const std::string& path, NullMembers nulls,
                  std::string_view what) {
  switch (value.type()) {
    case Json::value_t::object:
      if (depth > kMaxTwinDepth) {
        return invalidArgument(std::string(what) + " is nested deeper than " +
                               std::to_string(kMaxTwinDepth) + " levels" + at(path));
      }
      for (auto it = value.begin(); it != value.end(); ++it) {
        const std::string& key = it.key();
        const std::string child = childPath(path, key);
        HUB_RETURN_IF_ERROR(checkName(key, path, what));
        if (it->is_null() && nulls == NullMembers::kRefused) {
          return invalidArgument(std::string(what) + ": null member" + at(child));
        }
        HUB_RETURN_IF_ERROR(checkValue(*it, depth + 1, child, nulls, what));
      }
      return Status::ok();
    case Json::value_t::array:
      if (depth > kMaxTwinDepth) {
        return invalidArgument(std::string(what) + " is nested deeper than " +
                               std::to_string(kMaxTwinDepth) + " levels" + at(path));
      }
      for (size_t i = 0; i < value.size(); ++i) {
        // Null elements are plain values: merge patches replace arrays whole.
        HUB_RETURN_IF_ERROR(checkValue(value[i], depth + 1,
                                       path + "[" + std::to_string(i) + "]", nulls, what));
      }
      return Status::ok();
    case Json::value_t::string: {
      const size_t size = value.get_ref<const std::string&>().size();
      if (size > kMaxStringValueBytes) {
        return invalidArgument(std::string(what) + ": string value of " + std::to_string(size) +
                               " bytes" + at(path) + " is longer than " +
                               std::to_string(kMaxStringValueBytes));
      }
      return Status::ok();
    }
    case Json::value_t::number_unsigned:
      if (value.get<uint64_t>() > static_cast<uint64_t>(kMaxTwinInteger)) {
        return invalidArgument(std::string(what) + ": integer " + value.dump() + at(path) +
                               " is outside +-2^52");
      }
      return Status::ok();
    case Json::value_t::number_integer: {
      const auto n = value.get<int64_t>();
      if (n < -kMaxTwinInteger || n > kMaxTwinInteger) {
        return invalidArgument(std::string(what) + ": integer " + value.dump() + at(path) +
                               " is outside +-2^52");
      }
      return Status::ok();
    }
    default:  // null, boolean, float (the parser refuses NaN and infinities)
      return Status::ok();
  }
}

// Checks a patch or desired document: no $version/$metadata (named specifically, since those are
// what a confused client sends), then the limits.
Status checkDocument(const Json& doc, std::string_view what) {
  for (const char* reserved : {kVersion, kMetadata}) {
    if (doc.contains(reserved)) {
      return invalidArgument(std::string(what) + " cannot set \"" + reserved + "\"");
    }
  }
  HUB_RETURN_IF_ERROR(checkValue(doc, 1, "", NullMembers::kAllowed, what));
  const size_t size = dumpCompact(doc).size();
  if (size > kMaxTwinBytes) {
    return invalidArgument(std::string(what) + " is too large: " + std::to_string(size) +
                           " bytes (limit " + std::to_string(kMaxTwinBytes) + ")");
  }
  return Status::ok();
}

Status checkSectionSize(const Json& section, std::string_view what) {
  const size_t size = dumpCompact(section).size();
  if (size > kMaxTwinBytes) {
    return invalidArgument(std::string(what) + " would grow to " + std::to_string(size) +
                           " bytes (limit " + std::to_string(kMaxTwinBytes) + ")");
  }
  return Status::ok();
}

// Removes null members (not array elements), recursively: the stored section never holds them.
void dropNullMembers(Json& object) {
  for (auto it = object.begin(); it != object.end();) {
    if (it->is_null()) {
      it = object.erase(it);
    } else {
      if (it->is_object()) dropNullMembers(*it);
      ++it;
    }
  }
}

// Equality as a JSON reader sees it: member order ignored, but 1 and 1.0 differ (nlohmann's ==
// compares numbers across types, and a module would see "1.0" become "1" otherwise).
bool sameJson(const Json& a, const Json& b) {
  if (a.is_number_integer() && b.is_number_integer()) return a == b;  // signed or unsigned
  if (a.type() != b.type()) return false;
  if (a.is_object()) {
    if (a.size() != b.size()) return false;
    for (auto it = a.begin(); it != a.end(); ++it) {
      const auto other = b.find(it.key());
      if (other == b.end() || !sameJson(*it, *other)) return false;
    }
    return true;
  }
  if (a.is_array()) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
      if (!sameJson(a[i], b[i])) return false;
    }
    return true;
  }
  return a == b;
}

// The merge patch that turns object `from` into object `to` (neither holds null members).
Json diffObjects(const Json& from, const Json& to) {
  Json patch = Json::object();
  for (auto it = to.begin(); it != to.end(); ++it) {
    const auto old = from.find(it.key());
    if (old == from.end()) {
      patch[it.key()] = *it;
    } else if (old->is_object() && it->is_object()) {
      Json nested = diffObjects(*old, *it);
      if (!nested.empty()) patch[it.key()] = std::move(nested);
    } else if (!sameJson(*old, *it)) {
      patch[it.key()] = *it;
    }
  }
  for (auto it = from.begin(); it != from.end(); ++it) {
    if (!to.contains(it.key())) patch[it.key()] = nullptr;
  }
  return patch;
}

void stamp(Json& meta, int64_t now_ms, std::optional<int64_t> version) {
  if (!meta.is_object()) meta = Json::object();
  meta[kLastUpdated] = now_ms;
  if (version) meta[kLastUpdatedVersion] = *version;
}

// RFC 7386 MergePatch of object `target` with object `patch`, keeping `meta` (target's metadata
// node) in step: everything the patch touches, and its ancestors, get now_ms.
void mergePatch(Json& target, Json& meta, const Json& patch, int64_t now_ms,
                std::optional<int64_t> version) {
  stamp(meta, now_ms, version);
  for (auto it = patch.begin(); it != patch.end(); ++it) {
    const std::string& key = it.key();
    if (it->is_null()) {
      target.erase(key);  // erasing a missing member is a no-op, as the RFC wants
      meta.erase(key);
      continue;
    }
    Json& child = target[key];
    Json& child_meta = meta[key];
    if (it->is_object()) {
      // A member that was not an object is replaced by MergePatch({}, value); its old metadata
      // described the old value.
      if (!child.is_object()) {
        child = Json::object();
        child_meta = Json::object();
      }
      mergePatch(child, child_meta, *it, now_ms, version);
    } else {
      child = *it;
      child_meta = Json::object();  // drop metadata of members a replaced object had
      stamp(child_meta, now_ms, version);
    }
  }
}

std::string isoUtc(int64_t ms) {
  namespace ch = std::chrono;
  ms = std::clamp<int64_t>(ms, 0, kMaxTimestampMs);
  const ch::sys_time<ch::milliseconds> time{ch::milliseconds(ms)};
  const ch::sys_days day = ch::floor<ch::days>(time);
  const ch::year_month_day date{day};
  const ch::hh_mm_ss<ch::milliseconds> clock{time - day};
  char text[96];
  std::snprintf(text, sizeof text, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ",
                static_cast<int>(date.year()), static_cast<unsigned>(date.month()),
                static_cast<unsigned>(date.day()), static_cast<int>(clock.hours().count()),
                static_cast<int>(clock.minutes().count()),
                static_cast<int>(clock.seconds().count()),
                static_cast<int>(clock.subseconds().count()));
  return text;
}

// The GET form of a metadata node for `value`: timestamps as ISO text, one child per member of
// an object. Walks the section rather than the stored tree, so the output always matches the
// properties; a missing stored node inherits its parent's time.
Json metadataOut(const Json& value, const Json* meta, int64_t inherited_ms,
                 std::optional<int64_t> inherited_version, bool with_version) {
  int64_t ms = inherited_ms;
  std::optional<int64_t> version = inherited_version;
  if (meta != nullptr && meta->is_object()) {
    const auto t = meta->find(kLastUpdated);
    if (t != meta->end() && t->is_number_integer()) ms = t->get<int64_t>();
    const auto v = meta->find(kLastUpdatedVersion);
    if (v != meta->end() && v->is_number_integer()) version = v->get<int64_t>();
  }
  Json node = Json::object();
  node[kLastUpdated] = isoUtc(ms);
  if (with_version && version) node[kLastUpdatedVersion] = *version;
  if (value.is_object()) {
    for (auto it = value.begin(); it != value.end(); ++it) {
      const Json* child = nullptr;
      if (meta != nullptr && meta->is_object()) {
        const auto found = meta->find(it.key());
        if (found != meta->end()) child = &*found;
      }
      node[it.key()] = metadataOut(*it, child, ms, version, with_version);
    }
  }
  return node;
}

// Checks a stored metadata node at `depth`: integer timestamps, object children.
Status checkStoredMetadata(const Json& meta, int depth, bool root) {
  if (!meta.is_object()) return corruption("stored twin: metadata node is not an object");
  if (depth > kMaxTwinDepth + 1) return corruption("stored twin: metadata nested too deep");
  const auto t = meta.find(kLastUpdated);
  if (t == meta.end() ? root : !t->is_number_integer()) {
    return corruption("stored twin: metadata without an integer $lastUpdated");
  }
  for (auto it = meta.begin(); it != meta.end(); ++it) {
    if (it.key() == kLastUpdated) continue;
    if (it.key() == kLastUpdatedVersion) {
      if (!it->is_number_integer()) {
        return corruption("stored twin: metadata with a non-integer $lastUpdatedVersion");
      }
      continue;
    }
    HUB_RETURN_IF_ERROR(checkStoredMetadata(*it, depth + 1, false));
  }
  return Status::ok();
}

}  // namespace

struct Twin::Impl {
  struct Section {
    Json properties = Json::object();  // never holds "$version"/"$metadata" or null members
    Json metadata = Json::object();    // see the stored form above
    int64_t version = 1;
  };
  Section desired;
  Section reported;
  // Cloud sync (see twin.h): the reported properties IoT Hub acknowledged, and whether the
  // desired section is the cloud's.
  Json cloud_reported = Json::object();
  bool desired_from_cloud = false;
};

namespace {

std::string sectionStored(const Json& properties, const Json& metadata, int64_t version) {
  return "{\"version\":" + std::to_string(version) + ",\"properties\":" + dumpCompact(properties) +
         ",\"metadata\":" + dumpCompact(metadata) + "}";
}

Json sectionForGet(const Json& properties, const Json& metadata, int64_t version,
                   bool with_version) {
  Json out = properties;
  out[kMetadata] = metadataOut(properties, &metadata, 0, std::nullopt, with_version);
  out[kVersion] = version;
  return out;
}

// Reads one section of the stored form; every problem is kCorruption.
template <typename Section>
Result<Section> readStoredSection(const Json& root, const char* name) {
  const std::string what = std::string("stored twin ") + name;
  const auto found = root.find(name);
  if (found == root.end() || !found->is_object()) return corruption(what + " is missing");
  const Json& stored = *found;
  Section section;
  const auto version = stored.find("version");
  if (version == stored.end() || !version->is_number_integer() ||
      (version->is_number_unsigned() && version->get<uint64_t>() > kMaxStoredVersion) ||
      version->get<int64_t>() < 1 || version->get<int64_t>() > kMaxStoredVersion) {
    return corruption(what + " has no valid version");
  }
  section.version = version->get<int64_t>();
  const auto properties = stored.find("properties");
  if (properties == stored.end() || !properties->is_object()) {
    return corruption(what + " has no properties object");
  }
  // Re-validate: a section that breaks the limits would be served to modules and pushed
  // upstream as if we had accepted it. (This also refuses "$version"/"$metadata" members, since
  // no name may contain '$'.)
  Status valid = checkValue(*properties, 1, "", NullMembers::kRefused, what);
  if (valid.isOk()) valid = checkSectionSize(*properties, what);
  if (!valid.isOk()) return corruption(std::string(valid.message()));
  section.properties = *properties;
  const auto metadata = stored.find("metadata");
  if (metadata == stored.end()) return corruption(what + " has no metadata");
  HUB_RETURN_IF_ERROR(checkStoredMetadata(*metadata, 1, true));
  section.metadata = *metadata;
  return section;
}

}  // namespace

Twin::Twin() : Twin(int64_t{0}) {}

Twin::Twin(int64_t created_ms) : impl_(std::make_unique<Impl>()) {
  stamp(impl_->desired.metadata, created_ms, impl_->desired.version);
  stamp(impl_->reported.metadata, created_ms, std::nullopt);
}

Twin::Twin(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Twin::~Twin() = default;
Twin::Twin(const Twin& other) : impl_(std::make_unique<Impl>(other.impl())) {}
Twin& Twin::operator=(const Twin& other) {
  if (this != &other) impl_ = std::make_unique<Impl>(other.impl());
  return *this;
}
Twin::Twin(Twin&& other) noexcept = default;
Twin& Twin::operator=(Twin&& other) noexcept = default;

const Twin::Impl& Twin::impl() const {
  HUB_RELEASE_ASSERT(impl_ != nullptr, "use of a moved-from Twin");
  return *impl_;
}

Twin::Impl& Twin::impl() {
  HUB_RELEASE_ASSERT(impl_ != nullptr, "use of a moved-from Twin");
  return *impl_;
}

Result<Twin> Twin::parse(std::string_view stored) {
  try {
    if (stored.size() > kMaxStoredBytes) {
      return corruption("stored twin is too large: " + std::to_string(stored.size()) + " bytes");
    }
    if (deeperThan(stored, kMaxStoredDepth)) return corruption("stored twin is nested too deep");
    Json root;
    try {
      root = Json::parse(stored.begin(), stored.end());
    } catch (const Json::parse_error& e) {
      return corruption("stored twin is not valid JSON: " + parseErrorReason(e));
    }
    if (!root.is_object()) return corruption("stored twin is not a JSON object");
    const auto schema = root.find("schema");
    if (schema == root.end() || !schema->is_number_integer() ||
        schema->get<int64_t>() != kStoredSchema) {
      return corruption("stored twin has an unknown schema");
    }
    auto impl = std::make_unique<Impl>();
    HUB_ASSIGN_OR_RETURN(impl->desired, readStoredSection<Impl::Section>(root, "desired"));
    HUB_ASSIGN_OR_RETURN(impl->reported, readStoredSection<Impl::Section>(root, "reported"));
    if (const auto cloud = root.find("cloud"); cloud != root.end()) {
      const auto reported = cloud->is_object() ? cloud->find("reported") : cloud->end();
      const auto desired = cloud->is_object() ? cloud->find("desired") : cloud->end();
      if (!cloud->is_object() || reported == cloud->end() || !reported->is_object() ||
          desired == cloud->end() || !desired->is_boolean()) {
        return corruption("stored twin has a damaged cloud sync state");
      }
      Status valid = checkValue(*reported, 1, "", NullMembers::kRefused, "stored cloud baseline");
      if (!valid.isOk()) return corruption(std::string(valid.message()));
      impl->cloud_reported = *reported;
      impl->desired_from_cloud = desired->get<bool>();
    }
    return Twin(std::move(impl));
  } catch (const std::exception& e) {
    // Not expected (every access above is type-checked first); damage must not crash the hub.
    return corruption(std::string("stored twin: ") + e.what());
  }
}

std::string Twin::serialize() const {
  try {
    const Impl& s = impl();
    return "{\"schema\":" + std::to_string(kStoredSchema) + ",\"desired\":" +
           sectionStored(s.desired.properties, s.desired.metadata, s.desired.version) +
           ",\"reported\":" +
           sectionStored(s.reported.properties, s.reported.metadata, s.reported.version) +
           (s.cloud_reported.empty() && !s.desired_from_cloud
                ? std::string()
                : ",\"cloud\":{\"reported\":" + dumpCompact(s.cloud_reported) +
                      ",\"desired\":" + (s.desired_from_cloud ? "true" : "false") + "}") +
           "}";
  } catch (const std::exception&) {
    // Only std::bad_alloc can get here; the empty text parses as damage, never as a wrong twin.
    HUB_BUG("Twin::serialize threw");
    return std::string();
  }
}

std::string Twin::getResponse() const {
  try {
    const Impl& s = impl();
    Json out = Json::object();
    out["desired"] =
        sectionForGet(s.desired.properties, s.desired.metadata, s.desired.version, true);
    out["reported"] =
        sectionForGet(s.reported.properties, s.reported.metadata, s.reported.version, false);
    return dumpCompact(out);
  } catch (const std::exception&) {
    HUB_BUG("Twin::getResponse threw");
    return std::string();
  }
}

int64_t Twin::desiredVersion() const { return impl().desired.version; }
int64_t Twin::reportedVersion() const { return impl().reported.version; }

std::string Twin::desiredJson() const {
  try {
    return dumpCompact(impl().desired.properties);
  } catch (const std::exception&) {
    HUB_BUG("Twin::desiredJson threw");
    return std::string();
  }
}

std::string Twin::reportedJson() const {
  try {
    return dumpCompact(impl().reported.properties);
  } catch (const std::exception&) {
    HUB_BUG("Twin::reportedJson threw");
    return std::string();
  }
}

Result<int64_t> Twin::patchReported(std::string_view patch_json, int64_t now_ms) {
  constexpr std::string_view kWhat = "reported patch";
  try {
    HUB_ASSIGN_OR_RETURN(const Json patch, parseObjectText(patch_json, kWhat));
    HUB_RETURN_IF_ERROR(checkDocument(patch, kWhat));
    Impl::Section& section = impl().reported;
    // Merge into copies and commit only when the result passes, so a refusal changes nothing.
    Json properties = section.properties;
    Json metadata = section.metadata;
    mergePatch(properties, metadata, patch, now_ms, std::nullopt);
    // Names, values and depth of the result are within the limits because both the old section
    // and the patch are; only the size can grow beyond them.
    HUB_RETURN_IF_ERROR(checkSectionSize(properties, "reported properties"));
    section.properties = std::move(properties);
    section.metadata = std::move(metadata);
    section.version += 1;
    return section.version;
  } catch (const std::exception& e) {
    return internalError(std::string("reported patch: ") + e.what());
  }
}

Result<std::optional<std::string>> Twin::setDesired(std::string_view desired_json,
                                                    int64_t now_ms) {
  constexpr std::string_view kWhat = "desired properties";
  try {
    HUB_ASSIGN_OR_RETURN(Json desired, parseObjectText(desired_json, kWhat));
    HUB_RETURN_IF_ERROR(checkDocument(desired, kWhat));
    dropNullMembers(desired);
    Impl::Section& section = impl().desired;
    const Json patch = diffObjects(section.properties, desired);
    if (patch.empty()) return std::optional<std::string>();
    const int64_t version = section.version + 1;
    // The patch drives the metadata (only what changed gets the new time); the section itself
    // becomes `desired` as written, so it keeps the manifest's member order.
    Json merged = section.properties;
    Json metadata = section.metadata;
    mergePatch(merged, metadata, patch, now_ms, version);
    HUB_ASSERT(sameJson(merged, desired), "desired diff does not reproduce the document");
    std::string patch_text = dumpCompact(patch);
    section.properties = std::move(desired);
    section.metadata = std::move(metadata);
    section.version = version;
    return std::optional<std::string>(std::move(patch_text));
  } catch (const std::exception& e) {
    return internalError(std::string("desired properties: ") + e.what());
  }
}

std::string Twin::desiredPatchForCatchUp() const {
  try {
    Json out = impl().desired.properties;
    out[kVersion] = impl().desired.version;
    return dumpCompact(out);
  } catch (const std::exception&) {
    HUB_BUG("Twin::desiredPatchForCatchUp threw");
    return std::string();
  }
}

// ---- cloud sync ----

std::optional<std::string> Twin::reportedPatchForCloud() const {
  try {
    const Json patch = diffObjects(impl().cloud_reported, impl().reported.properties);
    if (patch.empty()) return std::nullopt;
    return dumpCompact(patch);
  } catch (const std::exception&) {
    HUB_BUG("Twin::reportedPatchForCloud threw");
    return std::nullopt;
  }
}

Status Twin::setCloudReported(std::string_view reported_json) {
  try {
    HUB_ASSIGN_OR_RETURN(Json reported, parseObjectText(reported_json, "cloud baseline"));
    dropNullMembers(reported);
    impl().cloud_reported = std::move(reported);
    return Status::ok();
  } catch (const std::exception& e) {
    return internalError(std::string("cloud baseline: ") + e.what());
  }
}

std::string Twin::cloudReportedJson() const {
  try {
    return dumpCompact(impl().cloud_reported);
  } catch (const std::exception&) {
    HUB_BUG("Twin::cloudReportedJson threw");
    return std::string();
  }
}

bool Twin::desiredFromCloud() const { return impl().desired_from_cloud; }

namespace {

// Takes "$version" out of a cloud document (and "$metadata", which is the cloud's, not ours).
// Returns the version, or std::nullopt if there is none or it is not a positive integer.
std::optional<int64_t> takeCloudVersion(Json& doc) {
  std::optional<int64_t> version;
  if (const auto v = doc.find(kVersion); v != doc.end()) {
    if (v->is_number_integer() && !(v->is_number_unsigned() && v->get<uint64_t>() > kMaxStoredVersion) &&
        v->get<int64_t>() >= 1 && v->get<int64_t>() <= kMaxStoredVersion) {
      version = v->get<int64_t>();
    }
    doc.erase(kVersion);
  }
  doc.erase(kMetadata);
  return version;
}

std::string withVersion(Json patch, int64_t version) {
  patch[kVersion] = version;
  return dumpCompact(patch);
}

}  // namespace

Result<std::optional<std::string>> Twin::setDesiredFromCloud(std::string_view section_json, int64_t now_ms) {
  constexpr std::string_view kWhat = "cloud desired properties";
  try {
    HUB_ASSIGN_OR_RETURN(Json desired, parseObjectText(section_json, kWhat));
    const std::optional<int64_t> version = takeCloudVersion(desired);
    if (!version) return invalidArgument(std::string(kWhat) + " have no valid \"$version\"");
    HUB_RETURN_IF_ERROR(checkDocument(desired, kWhat));
    dropNullMembers(desired);
    Impl& s = impl();
    const Json patch = diffObjects(s.desired.properties, desired);
    s.desired_from_cloud = true;
    if (patch.empty() && *version == s.desired.version) return std::optional<std::string>();
    Json merged = s.desired.properties;
    Json metadata = s.desired.metadata;
    mergePatch(merged, metadata, patch, now_ms, *version);
    s.desired.properties = std::move(desired);
    s.desired.metadata = std::move(metadata);
    s.desired.version = *version;
    return std::optional<std::string>(withVersion(patch, *version));
  } catch (const std::exception& e) {
    return internalError(std::string("cloud desired properties: ") + e.what());
  }
}

Result<std::string> Twin::desiredOfGetResponse(std::string_view body) {
  try {
    HUB_ASSIGN_OR_RETURN(Json doc,
                         parseObjectText(body, "twin GET answer", kMaxStoredBytes, kMaxTwinDepth + 2));
    const auto desired = doc.find("desired");
    if (desired == doc.end() || !desired->is_object()) {
      return invalidArgument("twin GET answer has no \"desired\" object");
    }
    desired->erase(kMetadata);  // the cloud's timestamps; ours are kept by setDesiredFromCloud
    return dumpCompact(*desired);
  } catch (const std::exception& e) {
    return internalError(std::string("twin GET answer: ") + e.what());
  }
}

Result<std::optional<std::string>> Twin::patchDesiredFromCloud(std::string_view patch_json, int64_t topic_version,
                                                               int64_t now_ms) {
  constexpr std::string_view kWhat = "cloud desired patch";
  try {
    HUB_ASSIGN_OR_RETURN(Json patch, parseObjectText(patch_json, kWhat));
    const std::optional<int64_t> body_version = takeCloudVersion(patch);
    const int64_t version = body_version.value_or(topic_version);
    if (version < 1 || version > kMaxStoredVersion) {
      return invalidArgument(std::string(kWhat) + " has no valid version");
    }
    HUB_RETURN_IF_ERROR(checkDocument(patch, kWhat));
    Impl& s = impl();
    if (s.desired_from_cloud && version <= s.desired.version) return std::optional<std::string>();
    Json properties = s.desired.properties;
    Json metadata = s.desired.metadata;
    mergePatch(properties, metadata, patch, now_ms, version);
    HUB_RETURN_IF_ERROR(checkSectionSize(properties, "desired properties"));
    s.desired.properties = std::move(properties);
    s.desired.metadata = std::move(metadata);
    s.desired.version = version;
    s.desired_from_cloud = true;
    return std::optional<std::string>(withVersion(std::move(patch), version));
  } catch (const std::exception& e) {
    return internalError(std::string("cloud desired patch: ") + e.what());
  }
}

}  // namespace edgehub::core::twin
