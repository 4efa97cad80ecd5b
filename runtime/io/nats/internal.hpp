#pragma once

// Internal to observer_io_nats: RAII holders for nats.c objects.

#include "runtime/io/nats/connection.hpp"

#include <nats/nats.h>

#include <chrono>
#include <cstdint>

namespace fraiseql::nats_detail {

inline int64_t to_nanos(std::chrono::milliseconds ms) {
  return ms.count() * 1000000LL;
}
inline std::chrono::milliseconds from_nanos(int64_t ns) {
  return std::chrono::milliseconds(ns / 1000000LL);
}

/// A JetStream context on a connection, API requests bounded by `wait`.
struct js_context {
  jsCtx* js = nullptr;
  js_context(nats_connection& conn, std::chrono::milliseconds wait, jsOptions* extra = nullptr) {
    jsOptions o;
    if (extra != nullptr) {
      o = *extra;
    } else {
      jsOptions_Init(&o);
    }
    o.Wait = wait.count();
    nats_throw("JetStream context", natsConnection_JetStream(&js, conn.raw(), &o));
  }
  ~js_context() { jsCtx_Destroy(js); }
  js_context(const js_context&) = delete;
  js_context& operator=(const js_context&) = delete;
};

}  // namespace fraiseql::nats_detail
