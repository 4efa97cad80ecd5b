#pragma once

// Which worker should own which partition: rendezvous (highest random
// weight) hashing over the live workers' names. Every worker computes the
// same answer from the same member list, and a worker joining or leaving
// moves only the partitions it gains or loses (about partitions / workers).
// Pure. Who actually owns a partition is decided by its lease
// (actors/bus/worker.cpp); this is only where each one should go.

#include <cstdint>
#include <string>
#include <vector>

namespace fraiseql {

/// The member (index into `members`) that partition `p` belongs to; members
/// must be non-empty (names unique).
size_t partition_owner(const std::vector<std::string>& members, uint32_t partition);

/// The partitions of `me` among `members` (`me` included or not: a member not
/// listed gets nothing), ascending.
std::vector<uint32_t> partitions_of(const std::vector<std::string>& members, const std::string& me,
                                    uint32_t partitions);

}  // namespace fraiseql
