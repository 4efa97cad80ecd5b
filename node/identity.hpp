#pragma once

// This node process's identity, one definition for every place that names it:
// the leader lease holder, the job runner's lease token, the dedup owner token
// and the control plane's node name.

#include <string>

namespace fraiseql {

/// This machine's host name (gethostname; "unknown" when it fails).
std::string host_name();

/// This process: "host:pid". The lease holder and the control plane's node name.
std::string node_identity();

}  // namespace fraiseql
