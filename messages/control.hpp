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
#include <string>

namespace fraiseql {

constexpr uint32_t control_protocol_version = 1;

using hello_atom = caf::atom_constant<caf::atom("hello")>;
using control_atom = caf::atom_constant<caf::atom("control")>;

using control_actor = caf::typed_actor<
    caf::replies_to<hello_atom, uint32_t>::with<uint32_t, std::string>,
    caf::replies_to<control_atom, std::string, std::string, std::string>::with<std::string>>;

}  // namespace fraiseql
