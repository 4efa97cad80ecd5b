#pragma once

// One blocking HTTP POST of a `_bulk` body to Elasticsearch / OpenSearch
// (libcurl easy handle, used from the audit actor's own thread only).

#include <cstdint>
#include <string>

namespace fraiseql {

struct es_reply {
  /// HTTP status; 0 when no answer came (then `error` says why).
  long status = 0;
  std::string body;
  std::string error;
};

class es_client {
 public:
  /// `base_url` like http://127.0.0.1:9200; `auth` "user:password" (basic) or
  /// an API key; empty: none.
  es_client(std::string base_url, std::string auth, uint32_t timeout_ms);
  ~es_client();
  es_client(const es_client&) = delete;
  es_client& operator=(const es_client&) = delete;

  /// POST <base>/_bulk with an NDJSON body.
  es_reply bulk(const std::string& body);

 private:
  std::string url_;
  std::string auth_;
  uint32_t timeout_ms_;
  void* handle_ = nullptr;  // CURL*, kept for connection reuse
};

}  // namespace fraiseql
