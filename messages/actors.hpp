#pragma once

// Typed interfaces of every actor, in one place so actors can hold each other's
// handles without include cycles. Only actor TUs and apps include this header
// (it pulls in CAF).
//
// Delivery guarantees, stated where the protocol is declared:
// - The listener admits each event to the checkpointer *before* handing it to
//   the router, so a finish can never precede its admission.
// - An event is finished (finish_atom) only when every matched action either
//   succeeded or was durably written to the DLQ.
// - The checkpoint saved is the position of the longest finished prefix in
//   fence order: a crash re-delivers the events read after it (those in
//   flight, and those finished behind a slower one), never fewer.
// - The listener reads only while fewer than max_in_flight events are
//   unfinished (credits flow back from the checkpointer as events finish):
//   events held in memory are bounded; the watermark's entries between the
//   saved position and the read head are not, while one event stays slow.
//
// Wiring. Each actor holds the narrowest handle it sends to (admission_sink,
// run_sink, finish_sink, credit_sink below); a full handle converts to a
// narrow one implicitly, so the compiler checks every link and no cast is
// needed. Two links form cycles; in each, one side learns the other by a typed
// wiring message, which the node sends before the listener's first `read`:
// - The checkpointer is spawned before the listener (the listener admits to
//   it) and learns its credit_sink (the listener) by message. That message is
//   in the checkpointer's mailbox before any admission can be, so no finish,
//   and so no credit, precedes it; credits counted without a sink would be
//   kept, never dropped.
// - With deduplication, the dedup actor is spawned before the action pool (the
//   pool finishes into it) and learns its run_sink (the pool) by message, sent
//   before the router exists; events that came earlier would wait for it.

#include "messages/attempt.hpp"
#include "messages/breaker.hpp"
#include "messages/checkpoint.hpp"
#include "messages/event.hpp"
#include "messages/job.hpp"

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include <cstdint>
#include <string>
#include <vector>

// Shared, immutable payloads travel by pointer inside one process; they never
// cross a node boundary (the control plane uses its own serializable types).
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(fraiseql::event_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(fraiseql::event_batch)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(fraiseql::dlq_entry)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(fraiseql::attempt_outcome)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(fraiseql::checkpoint_record)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<fraiseql::job_spec>)

namespace fraiseql {

// Atoms are verbs, declared once.
using read_atom = caf::atom_constant<caf::atom("read")>;
using credit_atom = caf::atom_constant<caf::atom("credit")>;
using admit_atom = caf::atom_constant<caf::atom("admit")>;
using finish_atom = caf::atom_constant<caf::atom("finish")>;
using flush_atom = caf::atom_constant<caf::atom("flush")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using route_atom = caf::atom_constant<caf::atom("route")>;
using run_atom = caf::atom_constant<caf::atom("run")>;
using done_atom = caf::atom_constant<caf::atom("done")>;
using retry_atom = caf::atom_constant<caf::atom("retry")>;
using bury_atom = caf::atom_constant<caf::atom("bury")>;
using stop_atom = caf::atom_constant<caf::atom("stop")>;
using status_atom = caf::atom_constant<caf::atom("status")>;
using enqueue_atom = caf::atom_constant<caf::atom("enqueue")>;
using wake_atom = caf::atom_constant<caf::atom("wake")>;
using breakers_atom = caf::atom_constant<caf::atom("breakers")>;
using redrive_atom = caf::atom_constant<caf::atom("redrive")>;
using expire_atom = caf::atom_constant<caf::atom("expire")>;

/// Counters every pipeline actor reports for `status`: (in_flight, total).
using status_reply = caf::replies_to<status_atom>::with<uint64_t, uint64_t>;

// --- Narrow interfaces: what a sender needs of its receiver. ---

/// Events read by the listener, in fence order, before they are routed (the
/// checkpointer).
using admission_sink = caf::typed_actor<caf::reacts_to<admit_atom, event_batch>>;

/// Runs the listed observers (indices into the registry) for an event: the
/// action pool, or the dedup actor in front of it. The router sends to it.
using run_sink = caf::typed_actor<caf::reacts_to<run_atom, event_ptr, std::vector<uint32_t>>>;

/// Events finished (all their actions done or in the DLQ), batched by the
/// sender: the checkpointer, or the dedup actor in front of it. The router
/// (unmatched events), the action pool and the dedup actor send to it.
using finish_sink = caf::typed_actor<caf::reacts_to<finish_atom, std::vector<uint64_t>>>;

/// `n` events finished: room in the in-flight window (the listener). The
/// checkpointer sends to it.
using credit_sink = caf::typed_actor<caf::reacts_to<credit_atom, uint64_t>>;

// --- Full interfaces, one per actor. ---

/// Receives finished events, keeps the contiguous watermark, saves it.
using checkpointer_actor = caf::typed_actor<
    /// Events read by the listener, in fence order, before they are routed.
    caf::reacts_to<admit_atom, event_batch>,
    /// Events are finished (all their actions done or in the DLQ), batched by
    /// the sender: one message, one wake-up of this detached actor.
    caf::reacts_to<finish_atom, std::vector<uint64_t>>,
    /// Wiring, sent once by the node after spawning the listener and before its
    /// first read: where credits go (see "Wiring" above).
    caf::reacts_to<credit_sink>,
    /// Periodic save and credit flush (self-sent).
    caf::reacts_to<tick_atom>,
    /// Saves now if anything changed; replies with what is saved.
    caf::replies_to<flush_atom>::with<checkpoint_record>,
    /// (events in flight, events finished since start).
    status_reply>;

/// Writes exhausted actions to the DLQ; replies with the row id once durable.
using dlq_actor = caf::typed_actor<caf::replies_to<bury_atom, dlq_entry>::with<int64_t>>;

/// Change-log retention (actors/history/pruner): prunes on its own timer; a
/// tick from outside only brings the next round forward.
using pruner_actor = caf::typed_actor<caf::reacts_to<tick_atom>>;

/// Audit trail (actors/history/audit): writes, on its own timer, the records
/// the router and the action pool put in its bounded queue
/// (runtime/core/audit.hpp); nothing on the delivery path waits for it.
using audit_actor = caf::typed_actor<
    /// Periodic write of what is queued (self-sent).
    caf::reacts_to<tick_atom>,
    /// Periodic retention and partitions ahead (self-sent).
    caf::reacts_to<expire_atom>,
    /// Writes what is queued now (shutdown); replies with the records written.
    caf::replies_to<flush_atom>::with<uint64_t>>;

/// Runs the actions of matched observers for events.
using action_pool_actor = caf::typed_actor<
    /// Runs the listed observers (indices into the registry) for the event.
    caf::reacts_to<run_atom, event_ptr, std::vector<uint32_t>>,
    /// Attempts have completed (sent by an executor's thread; the outcomes wait
    /// in the pool's inbox, one message per burst).
    caf::reacts_to<done_atom>,
    /// The backoff delay of attempt `id` (one action of one event, retried in
    /// place) elapsed: it is tried again.
    caf::reacts_to<retry_atom, uint64_t>,
    /// The leader lease's deadline had passed with attempts waiting: look again.
    caf::reacts_to<wake_atom>,
    /// Sends the finished events collected so far to the checkpointer (self-sent
    /// behind the messages already queued, so a burst becomes one message).
    caf::reacts_to<flush_atom>,
    /// (attempts in flight, events finished since start).
    status_reply,
    /// Circuit breaker per endpoint known to the pool, sorted by endpoint.
    caf::replies_to<status_atom, breakers_atom>::with<std::vector<breaker_status>>,
    /// Re-runs action `action` of observer `observer` (registry
    /// indices) for a dead-lettered event with the observer's retry policy,
    /// outside ordering and checkpointing. Replies (succeeded, attempts, last error).
    caf::replies_to<redrive_atom, event_ptr, uint32_t, uint32_t>::with<bool, uint32_t,
                                                                       std::string>>;

/// Deduplication ([performance] enable_dedup): stands between the router and
/// the action pool, and between the pool and the checkpointer. It claims each
/// event (`event:<id>` in Redis) before the pool runs it and confirms it when
/// the pool finishes it, before the checkpointer may pass it. The router holds
/// it as its run_sink and the pool as its finish_sink.
using dedup_actor = caf::typed_actor<
    /// Wiring, sent once by the node after spawning the pool and before the
    /// router exists: where claimed events run (see "Wiring" above).
    caf::reacts_to<run_sink>,
    /// From the router: an event to claim, then run (or skip when already done).
    caf::reacts_to<run_atom, event_ptr, std::vector<uint32_t>>,
    /// From the pool: events finished; confirmed, then passed to the checkpointer.
    caf::reacts_to<finish_atom, std::vector<uint64_t>>,
    /// Claims the events collected so far (self-sent behind a burst).
    caf::reacts_to<flush_atom>,
    /// Periodic: extends held claims, retries busy claims and held confirms.
    caf::reacts_to<tick_atom>,
    /// Releases the claims of events not finished (graceful shutdown).
    caf::replies_to<stop_atom>::with<bool>,
    /// (events claimed and not finished, events claimed since start).
    status_reply>;

/// Job queue: writes asynchronous actions into observer_jobs. Replies (with
/// the number of new rows) only once the INSERT has committed, so the pool
/// counts an async action as done for its event only when its job is durable;
/// a key already queued (redelivered event) adds nothing.
using job_writer_actor =
    caf::typed_actor<caf::replies_to<enqueue_atom, std::vector<job_spec>>::with<uint64_t>>;

/// Job queue: claims due jobs with a lease, runs them through the executors,
/// deletes them on success, reschedules them with backoff, or moves them to
/// the DLQ after their last attempt. Jobs survive restarts; an expired lease
/// (a node that died mid-action) makes a job claimable again.
using job_runner_actor = caf::typed_actor<
    /// Jobs were enqueued (or a backoff elapsed): claim now instead of at the next poll.
    caf::reacts_to<wake_atom>,
    /// Periodic poll, lease renewal and queue-depth gauge (self-sent).
    caf::reacts_to<tick_atom>,
    /// Completion of one attempt of job `id` (sent by an executor's thread).
    caf::reacts_to<done_atom, int64_t, attempt_outcome>,
    /// Deletes the jobs that succeeded since the last flush in one statement
    /// (self-sent behind the completions already queued), then claims more.
    caf::reacts_to<flush_atom>,
    /// Stops claiming; waits up to `timeout_ms` for running jobs, then gives up
    /// the leases of unfinished ones (due again at once). True when none was cut.
    caf::replies_to<stop_atom, uint64_t>::with<bool>,
    /// (jobs running, jobs finished since start).
    status_reply>;

/// Matches events to observers.
using router_actor = caf::typed_actor<caf::reacts_to<route_atom, event_batch>,
                                      /// (0, events routed since start).
                                      status_reply>;

/// Reads the change log behind the visibility fence.
using listener_actor = caf::typed_actor<
    /// Self-driven read loop.
    caf::reacts_to<read_atom>,
    /// `n` events finished: room in the in-flight window.
    caf::reacts_to<credit_atom, uint64_t>,
    /// Stops reading; replies once no read is in progress.
    caf::replies_to<stop_atom>::with<bool>,
    /// (events in flight, events read since start).
    status_reply>;

}  // namespace fraiseql
