#include "transports/upstream/upstream_url.h"

#include <cctype>

namespace edgehub::transports::upstream {
namespace {

core::Status bad(std::string_view url, std::string_view why) {
  std::string msg = "upstream URL '";
  msg.append(url);
  msg += "': ";
  msg.append(why);
  return core::invalidArgument(std::move(msg));
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

bool isRegNameChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
}

bool isIpv6Char(char c) {
  return std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.';
}

}  // namespace

std::string UpstreamEndpoint::toString() const {
  std::string out = tls() ? "mqtts://" : "mqtt://";
  const bool v6 = host.find(':') != std::string::npos;
  if (v6) out += '[';
  out += host;
  if (v6) out += ']';
  out += ':';
  out += std::to_string(port);
  return out;
}

core::Result<UpstreamEndpoint> parseUpstreamUrl(std::string_view url) {
  if (url.empty()) return bad(url, "empty");
  const size_t sep = url.find("://");
  if (sep == std::string_view::npos) return bad(url, "missing \"://\" (expected mqtt://host:port or mqtts://host:port)");
  UpstreamEndpoint ep;
  const std::string_view scheme = url.substr(0, sep);
  if (iequals(scheme, "mqtt")) {
    ep.scheme = UpstreamScheme::kMqtt;
    ep.port = 1883;
  } else if (iequals(scheme, "mqtts")) {
    ep.scheme = UpstreamScheme::kMqtts;
    ep.port = 8883;
  } else {
    return bad(url, "unknown scheme (expected mqtt or mqtts)");
  }
  std::string_view rest = url.substr(sep + 3);
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find_first_of("/?#@") != std::string_view::npos) {
    return bad(url, "user info, path, query and fragment are not allowed");
  }
  std::string_view host;
  std::string_view port_text;
  if (!rest.empty() && rest.front() == '[') {
    const size_t close = rest.find(']');
    if (close == std::string_view::npos) return bad(url, "unterminated '[' in host");
    host = rest.substr(1, close - 1);
    if (host.empty()) return bad(url, "empty host");
    for (char c : host) {
      if (!isIpv6Char(c)) return bad(url, "malformed IPv6 literal");
    }
    std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad(url, "unexpected text after ']'");
      port_text = after.substr(1);
      if (port_text.empty()) return bad(url, "empty port");
    }
  } else {
    const size_t colon = rest.find(':');
    host = rest.substr(0, colon);
    if (colon != std::string_view::npos) {
      port_text = rest.substr(colon + 1);
      if (port_text.empty()) return bad(url, "empty port");
    }
    if (host.empty()) return bad(url, "empty host");
    for (char c : host) {
      if (!isRegNameChar(c)) return bad(url, "invalid character in host");
    }
  }
  if (!port_text.empty()) {
    if (port_text.size() > 5) return bad(url, "port out of range (1..65535)");
    uint32_t port = 0;
    for (char c : port_text) {
      if (!std::isdigit(static_cast<unsigned char>(c))) return bad(url, "port is not a decimal number");
      port = port * 10 + static_cast<uint32_t>(c - '0');
    }
    if (port == 0 || port > 65535) return bad(url, "port out of range (1..65535)");
    ep.port = static_cast<uint16_t>(port);
  }
  ep.host = std::string(host);
  return ep;
}

}  // namespace edgehub::transports::upstream
