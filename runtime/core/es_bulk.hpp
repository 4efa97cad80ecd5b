#pragma once

// The Elasticsearch / OpenSearch backend of the audit trail, without I/O:
// documents of audit records, `_bulk` request bodies bounded in documents and
// bytes, and the per-item verdicts of a `_bulk` answer. Every document is
// indexed with `create` and a stable `_id` (the event id; for an attempt its
// idempotency key and attempt number), so a document sent twice is answered
// 409, which means "already indexed" and is success.

#include "runtime/core/audit.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace fraiseql {

struct es_doc {
  std::string index;
  std::string id;
  /// The document (JSON object text).
  std::string source;
  /// Times this document was sent and answered "try again" (429, 5xx).
  uint32_t retries = 0;
  /// An attempt's document (else an event's).
  bool attempt = false;
  size_t bytes() const { return index.size() + id.size() + source.size() + 64; }
};

/// "<prefix>-YYYY.MM.DD" of an RFC 3339 timestamp (its date; today's when
/// the timestamp cannot be read).
std::string es_index_name(const std::string& prefix, const std::string& timestamp);

es_doc es_event_doc(const std::string& prefix, const std::string& listener_id,
                    const audit_event_record& r);
es_doc es_attempt_doc(const std::string& prefix, const std::string& listener_id,
                      const audit_attempt_record& r);

/// How many documents from `docs[first]` on go into one request: at most
/// `max_docs` and `max_bytes` of body, and always at least one.
size_t es_bulk_count(const std::vector<es_doc>& docs, size_t first, size_t max_docs,
                     size_t max_bytes);

/// The NDJSON body of `docs[first, first + n)`.
std::string es_bulk_body(const std::vector<es_doc>& docs, size_t first, size_t n);

struct es_bulk_verdict {
  /// Indexed now or before (201, 200, 409).
  std::vector<size_t> done;
  /// Worth sending again (429, 5xx).
  std::vector<size_t> retry;
  /// Refused for good (other 4xx: a mapping conflict, a bad document), with why.
  std::vector<std::pair<size_t, std::string>> failed;
  /// Of `done`, those answered 409.
  size_t already = 0;
};

/// Reads the answer to a `_bulk` request of `n` documents (positions 0..n-1).
/// An answer that cannot be read, or lists a different number of items,
/// marks every document for retry.
es_bulk_verdict es_bulk_parse(const std::string& answer, size_t n);

}  // namespace fraiseql
