#pragma once
// MQTT topic names and topic filters: validation and matching (MQTT 3.1.1 section 4.7).
//
// Thread-safety: pure functions, safe from any thread. No allocation on success; an error
// Status allocates its message (errors are cold).
// These functions check structure only; UTF-8 well-formedness is checked by isValidMqttUtf8()
// (the decoder runs both). Callers with strings from outside run both too.
#include <string_view>

#include "core/status.h"

namespace edgehub::transports::mqtt {

// A topic name (what PUBLISH carries): at least one character (MQTT-4.7.3-1), no '+' or '#'
// (MQTT-3.3.2-2), at most 65535 bytes.
core::Status validateTopicName(std::string_view topic);

// A topic filter (what SUBSCRIBE/UNSUBSCRIBE carry): at least one character; '#' only as the
// whole last level (MQTT-4.7.1-2); '+' only as a whole level (MQTT-4.7.1-3); at most 65535 bytes.
core::Status validateTopicFilter(std::string_view filter);

// True when `filter` matches `topic`. '+' matches exactly one level (possibly empty), '#' matches
// the parent level and any number of child levels ("a/#" matches "a"), and a filter starting with
// a wildcard never matches a topic starting with '$' (MQTT-4.7.2-1).
// REQUIRES: validateTopicFilter(filter) and validateTopicName(topic) are OK.
bool topicMatches(std::string_view filter, std::string_view topic);

}  // namespace edgehub::transports::mqtt
