#pragma once

// The cluster's wire protocol: one failover coordinator per node
// (actors/cluster), published over CAF's middleman on [cluster] bind:port
// (TLS through CAF's OpenSSL module off loopback). Like the control plane,
// only strings cross the wire: a member is described by JSON
// (runtime/core/membership.hpp), so the protocol grows by fields, not by
// message types, and nothing needs announcing.
//
//   join(token, member)        -> {"ok": true, "view": [members]} |
//                                 {"ok": false, "error": "..."}
//   heartbeat(token, member)   every heartbeat_interval_ms, to every peer
//   leave(token, process)      on a graceful stop
//
// Every request across nodes has a timeout; a peer's silence past
// connection_timeout_ms makes it unreachable (and CAF drops the connection).

#include <caf/atom.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include <string>

namespace fraiseql {

constexpr uint32_t cluster_protocol_version = 1;

using join_atom = caf::atom_constant<caf::atom("join")>;
using heartbeat_atom = caf::atom_constant<caf::atom("heartbeat")>;
using leave_atom = caf::atom_constant<caf::atom("leave")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;

using coordinator_actor =
    caf::typed_actor<caf::replies_to<join_atom, std::string, std::string>::with<std::string>,
                     caf::reacts_to<heartbeat_atom, std::string, std::string>,
                     caf::reacts_to<leave_atom, std::string, std::string>,
                     // Local only (ignored from peers): start with the published
                     // port, then its own timer.
                     caf::reacts_to<tick_atom, uint16_t>, caf::reacts_to<tick_atom>>;

}  // namespace fraiseql
