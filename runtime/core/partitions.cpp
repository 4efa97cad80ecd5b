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

std::vector<size_t> assign_partitions(const std::vector<std::string>& members,
                                      uint32_t partitions) {
  std::vector<size_t> owner(partitions, 0);
  if (members.empty()) return owner;
  // floor(P / N) each, and `extra` = P mod N members one more.
  const size_t floor_share = partitions / members.size();
  size_t extra = partitions % members.size();
  std::vector<size_t> count(members.size(), 0);
  std::vector<size_t> rank(members.size());
  for (uint32_t p = 0; p < partitions; ++p) {
    for (size_t i = 0; i < rank.size(); ++i) rank[i] = i;
    // Highest weight first; ties (astronomically rare) to the smaller name.
    std::sort(rank.begin(), rank.end(), [&](size_t a, size_t b) {
      const uint64_t wa = weight(members[a], p), wb = weight(members[b], p);
      return wa != wb ? wa > wb : members[a] < members[b];
    });
    for (size_t i : rank) {
      const bool room = count[i] < floor_share || (count[i] == floor_share && extra > 0);
      if (!room) continue;
      if (count[i] == floor_share) --extra;
      owner[p] = i;
      ++count[i];
      break;
    }
  }
  return owner;
}

size_t partition_owner(const std::vector<std::string>& members, uint32_t partition) {
  return assign_partitions(members, partition + 1)[partition];
}

std::vector<uint32_t> partitions_of(const std::vector<std::string>& members, const std::string& me,
                                    uint32_t partitions) {
  std::vector<uint32_t> out;
  const auto at = std::find(members.begin(), members.end(), me);
  if (at == members.end()) return out;
  const auto self = static_cast<size_t>(at - members.begin());
  const auto owner = assign_partitions(members, partitions);
  for (uint32_t p = 0; p < partitions; ++p)
    if (owner[p] == self) out.push_back(p);
  return out;
}

}  // namespace fraiseql
