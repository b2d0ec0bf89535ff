#include "routing/route_table.h"

#include <algorithm>
#include <unordered_map>

#include "routing/body_test_eval.h"
#include "routing/property_lookup.h"
#include "routing/unicode.h"

namespace edgehub::routing {

namespace {

constexpr uint32_t kNoGroup = std::numeric_limits<uint32_t>::max();

// FNV-1a (64-bit) over a group key, extendable byte by byte along a path.
constexpr uint64_t kKeyHashSeed = 14695981039346656037ull;
inline uint64_t extendKeyHash(uint64_t h, std::string_view bytes) {
  for (const char c : bytes) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  return h;
}

// A product's low bits depend only on its factors' low bits: fold the high half in before
// masking, so that keys differing only in higher bits of some byte spread too.
inline size_t groupSlotIndex(uint64_t h, size_t mask) {
  return static_cast<size_t>(h ^ (h >> 32)) & mask;
}

}  // namespace

int64_t effectiveTtl(uint32_t route_ttl_secs, int64_t global_ttl_secs) {
  if (route_ttl_secs != 0) return static_cast<int64_t>(route_ttl_secs);
  return global_ttl_secs < 0 ? kTtlInfinite : global_ttl_secs;
}

std::string RouteCompileError::toString() const {
  return "route '" + route_name + "' " + error.toString();
}

core::Result<RouteTableConstSharedPtr> RouteTable::build(const core::Manifest& manifest,
                                                         std::vector<RouteCompileError>* errors) {
  return build(manifest.routes, manifest.store_and_forward.time_to_live_secs, errors);
}

core::Result<RouteTableConstSharedPtr> RouteTable::build(std::span<const core::RouteSpec> routes,
                                                         int64_t global_ttl_secs,
                                                         std::vector<RouteCompileError>* errors) {
  std::shared_ptr<RouteTable> table(new RouteTable());
  table->global_ttl_secs_ = global_ttl_secs;
  std::vector<RouteCompileError> failures;
  for (const core::RouteSpec& spec : routes) {
    RouteError err;
    auto compiled = compileRoute(spec.text, &err);
    if (!compiled.isOk()) {
      failures.push_back(RouteCompileError{spec.name, spec.json_path, err});
      continue;
    }
    RouteEntry entry;
    entry.name = spec.name;
    entry.compiled = std::move(compiled).value();
    entry.priority = spec.priority;
    entry.time_to_live_secs = spec.time_to_live_secs;
    entry.effective_ttl_secs = effectiveTtl(spec.time_to_live_secs, global_ttl_secs);
    appendFolded(entry.prefix_key, entry.compiled.prefix);
    const auto it = std::find(table->endpoints_.begin(), table->endpoints_.end(),
                              entry.compiled.endpoint);
    if (it == table->endpoints_.end()) {
      entry.endpoint = static_cast<uint32_t>(table->endpoints_.size());
      table->endpoints_.push_back(entry.compiled.endpoint);
    } else {
      entry.endpoint = static_cast<uint32_t>(it - table->endpoints_.begin());
    }
    table->routes_.push_back(std::move(entry));
  }
  if (!failures.empty()) {
    std::string message;
    for (const auto& f : failures) {
      if (!message.empty()) message += "\n";
      message += f.toString();
    }
    if (errors != nullptr) *errors = std::move(failures);
    return core::invalidArgument(std::move(message));
  }
  if (errors != nullptr) errors->clear();
  table->buildIndex();
  return RouteTableConstSharedPtr(std::move(table));
}

void RouteTable::buildIndex() {
  for (RouteEntry& e : routes_) {
    CompiledCondition& c = e.compiled.condition;
    if (c.paths_.empty()) continue;
    for (BodyPath& path : c.paths_) path.slot = body_plan_.add(path.steps);
    for (BodyTest& t : c.body_tests_.tests) {
      if (t.path < c.paths_.size()) t.slot = c.paths_[t.path].slot;
    }
    c.body_plan_ = &body_plan_;
  }
  // Groups by key while building; route() finds them through group_slots_ afterwards.
  std::unordered_map<std::string_view, uint32_t> group_of_key;
  for (uint32_t i = 0; i < routes_.size(); ++i) {
    const std::string& key = routes_[i].prefix_key;
    auto it = group_of_key.find(key);
    if (it == group_of_key.end()) {
      it = group_of_key.emplace(key, static_cast<uint32_t>(groups_.size())).first;
      groups_.push_back(Group{key, {}});
    }
    const RouteEntry& e = routes_[i];
    const CompiledCondition& c = e.compiled.condition;
    GroupRoute r;
    r.check = c.hasBodyTestForm() ? GroupRoute::Check::kBodyTests
              : c.alwaysTrue()    ? GroupRoute::Check::kAlways
                                  : GroupRoute::Check::kProgram;
    r.match = RouteMatch{e.endpoint, e.priority, e.effective_ttl_secs, i};
    r.condition = &c;
    Group& g = groups_[it->second];
    if (r.check == GroupRoute::Check::kBodyTests) {
      r.tests = c.bodyTestForm();
      g.shadowable = g.shadowable || r.tests.shadowable;
    }
    g.routes.push_back(r);
  }
  size_t slots = 4;
  while (slots < 2 * groups_.size()) slots *= 2;
  group_slots_.assign(slots, GroupSlot{});
  for (uint32_t g = 0; g < groups_.size(); ++g) {
    const uint64_t h = extendKeyHash(kKeyHashSeed, groups_[g].key);
    size_t i = groupSlotIndex(h, slots - 1);
    while (group_slots_[i].group != kNoGroup) i = (i + 1) & (slots - 1);
    group_slots_[i] = GroupSlot{h, g};
  }
  for (Group& g : groups_) {
    g.depth1_classes = g.key == "/" ? 3 : g.key == "/messages/" ? 1
                     : g.key == "/twinchangenotifications/" ? 2 : 0;
    if (g.key == "/") continue;
    source_depth_ = std::max(source_depth_,
                             (g.key == "/messages/" || g.key == "/twinchangenotifications/") ? 1 : 2);
  }
}

namespace {

struct SourceParts {
  bool twin = false;
  const PropertyView* module = nullptr;
  const PropertyView* output = nullptr;
};

SourceParts sourceParts(const MessageView& m) {
  SourceParts parts;
  const PropertyView* type = findProperty(m.system_properties, "messageType", true);
  if (type != nullptr && !type->is_null && equalsIgnoreCaseFast(type->value, "twinChangeNotification")) {
    parts.twin = true;
    return parts;
  }
  parts.module = findProperty(m.system_properties, "connectionModuleId", true);
  if (parts.module != nullptr && parts.module->is_null) parts.module = nullptr;
  if (parts.module != nullptr) {
    parts.output = findProperty(m.system_properties, "outputName", true);
    if (parts.output != nullptr && parts.output->is_null) parts.output = nullptr;
  }
  return parts;
}

}  // namespace

std::string RouteTable::sourcePath(const MessageView& message) {
  const SourceParts parts = sourceParts(message);
  if (parts.twin) return "/twinChangeNotifications";
  if (parts.module == nullptr) return "/messages";
  std::string path = "/messages/modules/" + std::string(parts.module->value);
  if (parts.output != nullptr) path += "/outputs/" + std::string(parts.output->value);
  return path;
}

bool RouteTable::sourceMatches(std::string_view route_prefix, std::string_view source_path) {
  std::string a;
  appendFolded(a, source_path);
  a.push_back('/');
  std::string p;
  appendFolded(p, route_prefix);
  return a.starts_with(p);
}

void RouteResults::clear() {
  for (size_t i = 0; i < count_; ++i) match_of_endpoint_[buffer_[i].endpoint] = kNoMatch;
  count_ = 0;
}

void RouteTable::evaluateGroup(uint32_t group, const MessageView& message, EvalContext& ctx,
                               RouteResults& out) const {
  const Group& g = groups_[group];
  // A '$' application property might shadow a body path (§8.4): shadowable body-test routes
  // then run their condition's program. Asked once per group, and only if it has such routes.
  const bool shadowed = g.shadowable && ctx.hasDollarProperty();
  // The scan's values, fetched at the group's first body-test route: the body is scanned only
  // when a route whose source matches needs it (§11.1), and then once for the whole table.
  const Value* values = nullptr;
  // The results in locals for the loop: through `out`, every store to a match made the compiler
  // reload the vectors' pointers and the count.
  RouteMatch* const matches = out.buffer_.data();
  uint32_t* const match_of_endpoint = out.match_of_endpoint_.data();
  size_t count = out.count_;
  for (const GroupRoute& r : g.routes) {
    if (r.check == GroupRoute::Check::kBodyTests && !(shadowed && r.tests.shadowable)) {
      // The common body condition, evaluated here against the table's scan: no call per route.
      if (values == nullptr) values = ctx.scannedValues(&body_plan_);
      if (!bodyTestFormFires(r.tests, values)) continue;
    } else if (r.check != GroupRoute::Check::kAlways && !r.condition->matches(message, ctx)) {
      continue;
    }
    const uint32_t endpoint = r.match.endpoint;
    const uint32_t index = match_of_endpoint[endpoint];
    if (index == RouteResults::kNoMatch) {
      match_of_endpoint[endpoint] = static_cast<uint32_t>(count);
      matches[count++] = r.match;
      continue;
    }
    RouteMatch& m = matches[index];
    if (r.match.priority < m.priority ||
        (r.match.priority == m.priority && r.match.ttl_secs > m.ttl_secs)) {
      m = r.match;
    }
  }
  out.count_ = count;
}

void RouteTable::route(const MessageView& message, EvalContext& ctx, RouteResults& out) const {
  out.clear();
  if (groups_.empty()) return;
  if (out.match_of_endpoint_.size() < endpoints_.size()) {
    out.match_of_endpoint_.resize(endpoints_.size(), RouteResults::kNoMatch);
    out.buffer_.resize(endpoints_.size());
  }
  ctx.beginMessage(message);
  // Folded source path with a trailing '/', built in the reusable scratch string.
  std::string& path = out.path_;
  path.clear();
  if (source_depth_ == 0) {
    for (uint32_t g = 0; g < groups_.size(); ++g) evaluateGroup(g, message, ctx, out);
    return;
  }
  if (source_depth_ == 1) {
    // Every group key is "/", "/messages/" or "/twinchangenotifications/": whether the message
    // is a twin change notification decides, without building its path.
    const PropertyView* type = findProperty(message.system_properties, "messageType", true);
    const bool twin = type != nullptr && !type->is_null &&
                      equalsIgnoreCaseFast(type->value, "twinChangeNotification");
    const uint8_t cls = twin ? 2 : 1;
    for (uint32_t g = 0; g < groups_.size(); ++g) {
      if ((groups_[g].depth1_classes & cls) != 0) evaluateGroup(g, message, ctx, out);
    }
    return;
  }
  const SourceParts parts = sourceParts(message);
  if (parts.twin) {
    path.append("/twinchangenotifications/");
  } else if (parts.module == nullptr) {
    path.append("/messages/");
  } else {
    path.append("/messages/modules/");
    appendFolded(path, parts.module->value);
    path.push_back('/');
    if (parts.output != nullptr) {
      path.append("outputs/");
      appendFolded(path, parts.output->value);
      path.push_back('/');
    }
  }
  if (groups_.size() <= 8) {
    // Few distinct sources: a linear prefix check beats hashing.
    for (uint32_t g = 0; g < groups_.size(); ++g) {
      if (std::string_view(path).starts_with(groups_[g].key)) evaluateGroup(g, message, ctx, out);
    }
    return;
  }
  // Every route prefix ends with '/', so only the segment prefixes of the path can match. The
  // key hash runs along the path; a slot's key is compared only when its hash is equal.
  const std::string_view p(path);
  const size_t mask = group_slots_.size() - 1;
  uint64_t h = kKeyHashSeed;
  for (size_t k = 0; k < p.size(); ++k) {
    h = extendKeyHash(h, p.substr(k, 1));
    if (p[k] != '/') continue;
    const std::string_view prefix = p.substr(0, k + 1);
    for (size_t i = groupSlotIndex(h, mask); group_slots_[i].group != kNoGroup;
         i = (i + 1) & mask) {
      const GroupSlot& slot = group_slots_[i];
      if (slot.hash == h && groups_[slot.group].key == prefix) {
        evaluateGroup(slot.group, message, ctx, out);
        break;
      }
    }
  }
}

}  // namespace edgehub::routing
