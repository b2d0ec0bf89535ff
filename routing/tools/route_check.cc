#include "routing/tools/route_check.h"

#include <vector>

#include "routing/eval_context.h"
#include "routing/parser.h"
#include "routing/route_table.h"
#include "routing/tools/message_json.h"
#include "routing/unicode.h"

namespace edgehub::routing {

namespace {

std::string ttlText(int64_t ttl) { return ttl == kTtlInfinite ? "infinite" : std::to_string(ttl) + "s"; }

bool containsIgnoreCase(std::string_view haystack, std::string_view needle) {
  std::string h;
  std::string n;
  appendFolded(h, haystack);
  appendFolded(n, needle);
  return h.find(n) != std::string::npos;
}

// Lint warnings for one compiled route.
void lint(const std::string& name, const CompiledRoute& r, std::ostream& out) {
  auto warn = [&](const std::string& text) { out << "warning: route '" << name << "': " << text << "\n"; };
  if (r.condition.usesBody() && !containsIgnoreCase(r.text, "$contentType")) {
    warn("$body conditions see the body only when the message has system properties contentType "
         "'application/json' and contentEncoding utf-8/utf-16/utf-32; other messages give "
         "undefined (consider a guard such as $contentType = 'application/json')");
  }
  if (r.prefix == "/") {
    warn("FROM " + r.source + " also matches twin change notifications (/twinChangeNotifications); "
         "use FROM /messages/* for telemetry only");
  }
  // '*' is only stripped at the end: anywhere else it is a literal character.
  const std::string_view body(r.prefix.data(), r.prefix.size() - 1);
  if (body.find('*') != std::string_view::npos) {
    warn("'*' in the middle of source '" + r.source +
         "' is a literal character, not a wildcard; the route can only match a module or output "
         "literally named with '*'");
  }
  const size_t last_slash = r.source.find_last_of('/');
  const std::string last = r.source.substr(last_slash + 1);
  if (last.size() > 1 && last.back() == '*' && last.find_first_not_of('*') != std::string::npos) {
    warn("source segment '" + last + "' is not a glob: trailing '*' is removed, so it matches only "
         "the name '" + last.substr(0, last.find_last_not_of('*') + 1) + "'");
  }
  // Loop: a module's output routed back to one of its own inputs.
  if (!r.endpoint.isUpstream()) {
    std::string folded;
    appendFolded(folded, r.prefix);
    std::string module_prefix = "/messages/modules/";
    appendFolded(module_prefix, r.endpoint.moduleId());
    module_prefix += "/";
    if (folded.starts_with(module_prefix)) {
      warn("possible loop: messages from module '" + r.endpoint.moduleId() +
           "' are routed back to its own input '" + r.endpoint.inputName() + "'");
    } else if (folded == "/" || folded == "/messages/" || folded == "/messages/modules/") {
      warn("possible loop: source '" + r.source + "' includes the output of module '" +
           r.endpoint.moduleId() + "', which is routed back to its own input '" +
           r.endpoint.inputName() + "'");
    }
  }
}

}  // namespace

int runRouteCheck(const core::Manifest& manifest, const std::string* message_json,
                  std::ostream& out) {
  int errors = 0;
  for (const core::RouteSpec& spec : manifest.routes) {
    RouteError err;
    auto compiled = compileRoute(spec.text, &err);
    if (!compiled.isOk()) {
      out << "error: route '" << spec.name << "' " << err.toString() << "\n";
      ++errors;
      continue;
    }
    lint(spec.name, *compiled, out);
  }
  if (errors > 0) {
    out << errors << " route(s) failed to compile; the manifest would be rejected\n";
    return 1;
  }
  auto table = RouteTable::build(manifest);
  if (!table.isOk()) {  // cannot happen after the loop above; kept so the tool never lies
    out << "error: " << table.status().message() << "\n";
    return 1;
  }
  out << "ok: " << manifest.routes.size() << " routes compiled\n";
  if (message_json == nullptr) return 0;

  auto owned = messageFromJson(*message_json);
  if (!owned.isOk()) {
    out << "error: message: " << owned.status().message() << "\n";
    return 1;
  }
  const MessageView view = owned->view();
  const std::string source = RouteTable::sourcePath(view);
  out << "source: " << source << "\n";
  EvalContext ctx;
  ctx.beginMessage(view);
  for (const RouteEntry& e : (*table)->routes()) {
    const CompiledRoute& r = e.compiled;
    out << "route '" << e.name << "': ";
    if (!RouteTable::sourceMatches(r.prefix, source)) {
      out << "no match: source mismatch (route prefix " << r.prefix << ", message source " << source
          << "/)\n";
      continue;
    }
    const TriState t = r.condition.evaluate(view, ctx);
    if (t == TriState::kTrue) {
      out << "match -> " << r.endpoint.toString() << " (priority " << e.priority << ", ttl "
          << ttlText(e.effective_ttl_secs) << ")\n";
    } else {
      out << "no match: condition is " << triStateName(t) << "\n";
    }
  }
  RouteResults results;
  (*table)->route(view, ctx, results);
  if (results.empty()) out << "deliver: nothing (no route matches; the message is dropped)\n";
  for (const RouteMatch& m : results.matches()) {
    out << "deliver: " << (*table)->endpoint(m.endpoint).toString() << " priority " << m.priority
        << " ttl " << ttlText(m.ttl_secs) << " (route '" << (*table)->routes()[m.route].name << "')\n";
  }
  return 0;
}

}  // namespace edgehub::routing
