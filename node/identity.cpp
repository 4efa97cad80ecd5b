#include "node/identity.hpp"

#include <unistd.h>

namespace fraiseql {

std::string host_name() {
  char host[256] = "unknown";
  gethostname(host, sizeof host - 1);
  return host;
}

std::string node_identity() {
  return host_name() + ":" + std::to_string(getpid());
}

}  // namespace fraiseql
