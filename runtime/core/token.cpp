#include "runtime/core/token.hpp"

namespace fraiseql {

bool same_token(const std::string& a, const std::string& b) {
  // Constant time in the length of the configured token.
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < b.size(); ++i)
    diff |= static_cast<unsigned char>(b[i] ^ (i < a.size() ? a[i] : 0));
  return diff == 0;
}

}  // namespace fraiseql
