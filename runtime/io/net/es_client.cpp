#include "runtime/io/net/es_client.hpp"

#include <curl/curl.h>

namespace fraiseql {

namespace {

size_t append(char* p, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(p, size * n);
  return size * n;
}

}  // namespace

es_client::es_client(std::string base_url, std::string auth, uint32_t timeout_ms)
    : url_(std::move(base_url)), auth_(std::move(auth)), timeout_ms_(timeout_ms) {
  while (!url_.empty() && url_.back() == '/') url_.pop_back();
  url_ += "/_bulk";
}

es_client::~es_client() {
  if (handle_ != nullptr) curl_easy_cleanup(static_cast<CURL*>(handle_));
}

es_reply es_client::bulk(const std::string& body) {
  if (handle_ == nullptr) handle_ = curl_easy_init();
  CURL* h = static_cast<CURL*>(handle_);
  es_reply r;
  if (h == nullptr) {
    r.error = "curl_easy_init failed";
    return r;
  }
  curl_easy_reset(h);
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/x-ndjson");
  std::string key_header;
  if (!auth_.empty() && auth_.find(':') == std::string::npos) {
    key_header = "Authorization: ApiKey " + auth_;
    headers = curl_slist_append(headers, key_header.c_str());
  }
  curl_easy_setopt(h, CURLOPT_URL, url_.c_str());
  curl_easy_setopt(h, CURLOPT_POST, 1L);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  if (!auth_.empty() && auth_.find(':') != std::string::npos) {
    curl_easy_setopt(h, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    curl_easy_setopt(h, CURLOPT_USERPWD, auth_.c_str());
  }
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, append);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &r.body);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_ms_));
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(timeout_ms_));
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  const CURLcode rc = curl_easy_perform(h);
  curl_slist_free_all(headers);
  if (rc != CURLE_OK) {
    r.error = curl_easy_strerror(rc);
    r.body.clear();
    return r;
  }
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
  return r;
}

}  // namespace fraiseql
