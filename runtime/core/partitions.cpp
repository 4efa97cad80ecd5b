#include "runtime/core/partitions.hpp"

#include <algorithm>

namespace fraiseql {

namespace {

/// splitmix64 of FNV-1a(name) ^ partition: well spread weights.
uint64_t weight(const std::string& name, uint32_t partition) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : name) {
    h ^= c;
    h *= 1099511628211ull;
  }
  uint64_t z = h ^ (static_cast<uint64_t>(partition) * 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

size_t partition_owner(const std::vector<std::string>& members, uint32_t partition) {
  size_t best = 0;
  uint64_t best_w = 0;
  for (size_t i = 0; i < members.size(); ++i) {
    const uint64_t w = weight(members[i], partition);
    // Ties (astronomically rare) go to the smaller name: still deterministic.
    if (i == 0 || w > best_w || (w == best_w && members[i] < members[best])) {
      best = i;
      best_w = w;
    }
  }
  return best;
}

std::vector<uint32_t> partitions_of(const std::vector<std::string>& members, const std::string& me,
                                    uint32_t partitions) {
  std::vector<uint32_t> out;
  if (std::find(members.begin(), members.end(), me) == members.end()) return out;
  for (uint32_t p = 0; p < partitions; ++p)
    if (members[partition_owner(members, p)] == me) out.push_back(p);
  return out;
}

}  // namespace fraiseql
