#pragma once

// The control plane's wire protocol: one typed actor per node, published over
// CAF's middleman (TLS through CAF's OpenSSL module off loopback). Only plain
// strings and integers cross the wire, so no type needs announcing and the
// protocol evolves by JSON fields, not by message types:
//
//   hello(client_version)           -> (server_version, node description JSON)
//   control(token, command, args)   -> reply JSON
//
// A reply is {"ok": true, "result": ...} or
// {"ok": false, "code": "auth"|"usage"|"failed"|"unavailable", "error": "..."}.
// Bump control_protocol_version when a command changes incompatibly;
// observerctl refuses to talk to a node of another version.

#include <caf/atom.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>

namespace fraiseql {

constexpr uint32_t control_protocol_version = 1;

using hello_atom = caf::atom_constant<caf::atom("hello")>;
using control_atom = caf::atom_constant<caf::atom("control")>;

using control_actor = caf::typed_actor<
    caf::replies_to<hello_atom, uint32_t>::with<uint32_t, std::string>,
    caf::replies_to<control_atom, std::string, std::string, std::string>::with<std::string>>;

/// How operators see a DLQ id: `dlq-001` (the spec's form, at least three
/// digits). On the wire ids stay integers.
inline std::string dlq_ref(int64_t id) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "dlq-%03lld", static_cast<long long>(id));
  return buf;
}

/// `dlq-001`, `DLQ-1` or `1` -> 1; nullopt when `s` is neither form.
inline std::optional<int64_t> parse_dlq_ref(std::string s) {
  if (s.size() > 4 && (s.compare(0, 4, "dlq-") == 0 || s.compare(0, 4, "DLQ-") == 0))
    s = s.substr(4);
  if (s.empty() || s.size() > 18) return std::nullopt;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

}  // namespace fraiseql
