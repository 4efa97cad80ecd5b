#pragma once

// Shared-secret comparison for the control plane and the cluster.

#include <string>

namespace fraiseql {

/// Token comparison in constant time in the length of the configured token `b`.
bool same_token(const std::string& a, const std::string& b);

}  // namespace fraiseql
