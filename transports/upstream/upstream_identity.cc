#include "transports/upstream/upstream_identity.h"

#include "transports/auth/sas_token.h"
#include "transports/percent_encoding.h"

namespace edgehub::transports::upstream {

std::string upstreamClientId(const core::Identity& identity) { return identity.clientId(); }

std::string upstreamUsername(std::string_view hub_host_name, const core::Identity& identity) {
  std::string out(hub_host_name);
  out += '/';
  out += identity.deviceId();
  out += '/';
  if (identity.isModule()) {
    out += identity.moduleId();
    out += '/';
  }
  out += "?api-version=";
  out += kUpstreamApiVersion;
  return out;
}

std::string upstreamSasResource(std::string_view hub_host_name, const core::Identity& identity) {
  std::string uri(hub_host_name);
  uri += "/devices/";
  uri += identity.deviceId();
  if (identity.isModule()) {
    uri += "/modules/";
    uri += identity.moduleId();
  }
  return percentEncode(uri);
}

std::string makeUpstreamPassword(std::string_view hub_host_name, const UpstreamCredentials& credentials,
                                 int64_t expiry_unix) {
  return auth::makeSasToken(upstreamSasResource(hub_host_name, credentials.identity),
                            credentials.symmetric_key, expiry_unix);
}

namespace {
void appendTopicPrefix(std::string& out, const core::Identity& identity) {
  out += "devices/";
  appendSegmentEncoded(out, identity.deviceId());
  if (identity.isModule()) {
    out += "/modules/";
    appendSegmentEncoded(out, identity.moduleId());
  }
  out += "/messages/events/";
}
}  // namespace

void appendTelemetryTopic(std::string& out, const core::Identity& identity, std::string_view encoded_bag) {
  appendTopicPrefix(out, identity);
  out.append(encoded_bag);
}

void appendTelemetryTopic(std::string& out, const core::Identity& identity,
                          std::span<const TelemetryProperty> properties) {
  appendTopicPrefix(out, identity);
  bool first = true;
  for (const TelemetryProperty& p : properties) {
    if (!first) out += '&';
    first = false;
    appendBagEncoded(out, p.key);
    if (p.value) {
      out += '=';
      appendBagEncoded(out, *p.value);
    }
  }
}

}  // namespace edgehub::transports::upstream
