#pragma once

// Which worker should own which partition: rendezvous (highest random
// weight) hashing over the live workers' names, bounded: partitions are
// taken in order, each by the highest-weight member still below its share
// (floor(partitions / members), one more for the first partitions % members
// members to need it). Every worker computes the same answer from the
// same member list; every member gets floor or ceil of partitions / members
// (plain rendezvous hashing split 16 partitions 12/4 between two workers,
// which halved their throughput); the price is that a join or leave can move
// a few partitions beyond those the member gains or loses (each move is a
// graceful hand-over). Pure. Who actually owns a partition is decided by its lease
// (actors/bus/worker.cpp); this is only where each one should go.

#include <cstdint>
#include <string>
#include <vector>

namespace fraiseql {

/// The owner (index into `members`) of every partition; members must be
/// non-empty (names unique), and in the same order for every caller.
std::vector<size_t> assign_partitions(const std::vector<std::string>& members, uint32_t partitions);

/// The owner of `partition` when there are partition + 1 partitions (a
/// prefix of assign_partitions: kept for tests; use assign_partitions).
size_t partition_owner(const std::vector<std::string>& members, uint32_t partition);

/// The partitions of `me` among `members` (`me` included or not: a member not
/// listed gets nothing), ascending.
std::vector<uint32_t> partitions_of(const std::vector<std::string>& members, const std::string& me,
                                    uint32_t partitions);

}  // namespace fraiseql
