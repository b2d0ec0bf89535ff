#include "transports/mqtt/topic.h"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace edgehub::transports::mqtt {
namespace {

constexpr size_t kMaxStringLength = 65535;

core::Status fail(std::string_view what, std::string_view reason) {
  std::string message(what);
  message.append(": ");
  message.append(reason);
  return core::invalidArgument(std::move(message));
}

// Eight bytes at a time (SWAR), because this runs on every inbound PUBLISH topic:
// find_first_of("+#") costs one memchr per byte and was most of the decode time
// (bench/transports/mqtt_codec_bench.cc).
bool hasWildcard(std::string_view s) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kHighs = 0x8080808080808080ULL;
  auto hasByte = [](uint64_t word, uint8_t byte) {
    uint64_t x = word ^ (kOnes * byte);
    return ((x - kOnes) & ~x & kHighs) != 0;
  };
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t word;
    std::memcpy(&word, s.data() + i, 8);
    if (hasByte(word, '+') || hasByte(word, '#')) return true;
  }
  for (; i < s.size(); ++i) {
    if (s[i] == '+' || s[i] == '#') return true;
  }
  return false;
}

}  // namespace

core::Status validateTopicName(std::string_view topic) {
  if (topic.empty()) return fail("invalid topic name", "empty");
  if (topic.size() > kMaxStringLength) return fail("invalid topic name", "longer than 65535 bytes");
  if (hasWildcard(topic)) {
    return fail("invalid topic name", "wildcard '+' or '#' in a topic name");
  }
  return core::Status::ok();
}

core::Status validateTopicFilter(std::string_view filter) {
  if (filter.empty()) return fail("invalid topic filter", "empty");
  if (filter.size() > kMaxStringLength) {
    return fail("invalid topic filter", "longer than 65535 bytes");
  }
  const size_t n = filter.size();
  for (size_t i = 0; i < n; ++i) {
    char c = filter[i];
    if (c == '#') {
      if (i != n - 1) return fail("invalid topic filter", "'#' is not the last character");
      if (i > 0 && filter[i - 1] != '/') {
        return fail("invalid topic filter", "'#' is not a whole level");
      }
    } else if (c == '+') {
      bool starts_level = i == 0 || filter[i - 1] == '/';
      bool ends_level = i == n - 1 || filter[i + 1] == '/';
      if (!starts_level || !ends_level) {
        return fail("invalid topic filter", "'+' is not a whole level");
      }
    }
  }
  return core::Status::ok();
}

bool topicMatches(std::string_view filter, std::string_view topic) {
  // MQTT-4.7.2-1: "$SYS/..." style topics are not matched by "#" or "+/...".
  if (!topic.empty() && topic.front() == '$' && !filter.empty() &&
      (filter.front() == '+' || filter.front() == '#')) {
    return false;
  }
  size_t f = 0;
  size_t t = 0;
  const size_t fn = filter.size();
  const size_t tn = topic.size();
  while (true) {
    // Both positions are at the start of a level here.
    if (f < fn && filter[f] == '#') return true;  // matches the rest, including nothing
    size_t f_end = filter.find('/', f);
    if (f_end == std::string_view::npos) f_end = fn;
    size_t t_end = topic.find('/', t);
    if (t_end == std::string_view::npos) t_end = tn;
    std::string_view f_level = filter.substr(f, f_end - f);
    std::string_view t_level = topic.substr(t, t_end - t);
    if (f_level != "+" && f_level != t_level) return false;
    bool f_last = f_end == fn;
    bool t_last = t_end == tn;
    if (t_last) {
      if (f_last) return true;
      // Topic exhausted: only a trailing "/#" still matches ("a/#" matches "a").
      return filter.substr(f_end) == "/#";
    }
    if (f_last) return false;
    f = f_end + 1;
    t = t_end + 1;
  }
}

}  // namespace edgehub::transports::mqtt
