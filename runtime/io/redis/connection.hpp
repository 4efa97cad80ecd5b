#pragma once

// Redis connections (hiredis): one single-thread connection with pipelining
// and reconnect backoff, and a pool of them.
//
// Every Redis call blocks the calling thread (bounded by the connect and
// command timeouts): call them from detached actors or a worker thread, never
// from an actor on CAF's cooperative scheduler. Calls throw redis_unavailable
// for "retry later" (connection refused or lost, timeout, server loading,
// reconnect backoff in progress) and redis_error for problems a retry will not
// fix (authentication refused, bad database index, unexpected reply).

#include "runtime/core/redis_url.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

struct redisContext;  // hiredis

namespace fraiseql {

/// One reply; arrays nest.
struct redis_reply {
  enum class kind : uint8_t { nil, status, error, integer, string, array };
  kind type = kind::nil;
  long long integer = 0;
  /// Text of a status, error or (binary-safe) string reply.
  std::string str;
  std::vector<redis_reply> elements;

  bool is_nil() const { return type == kind::nil; }
  bool is_error() const { return type == kind::error; }
  bool is_ok() const { return type == kind::status && str == "OK"; }
};

/// A reply as text for error messages.
std::string describe(const redis_reply& r);

struct redis_connection_options {
  redis_url url;
  std::chrono::milliseconds connect_timeout{5000};
  /// Bounds every socket read and write of a command or pipeline.
  std::chrono::milliseconds command_timeout{2000};
  /// After a failure, connection attempts are refused (redis_unavailable at
  /// once, no blocking) for initial * 2^(failures-1), capped at max.
  std::chrono::milliseconds reconnect_initial_delay{100};
  std::chrono::milliseconds reconnect_max_delay{5000};
  /// redis_pool::acquire waits at most this long for a free connection.
  std::chrono::milliseconds acquire_timeout{5000};
};

namespace detail {
struct redis_gate;  // reconnect backoff state, shared by the connections of a pool
}

/// One hiredis context. Not thread-safe: one thread at a time (a pool lease).
/// Connects lazily (AUTH, SELECT, timeouts, TCP keep-alive) and reconnects
/// after errors; failed attempts back off (see redis_connection_options).
/// The first one constructed sets SIGPIPE to SIG_IGN when it is SIG_DFL
/// (hiredis writes with write(2); a reset connection must not kill the process).
class redis_connection {
 public:
  explicit redis_connection(redis_connection_options opts);
  ~redis_connection();
  redis_connection(const redis_connection&) = delete;
  redis_connection& operator=(const redis_connection&) = delete;

  /// Connects now if not connected. Throws redis_unavailable / redis_error.
  void connect();
  bool connected() const { return ctx_ != nullptr; }
  /// Drops the connection; the next call reconnects.
  void reset();

  /// Sends all commands in one write and reads all replies (one round trip).
  /// Arguments are binary-safe. Error replies are returned, not thrown, except
  /// the server-state errors LOADING, BUSY, MASTERDOWN, TRYAGAIN, CLUSTERDOWN,
  /// READONLY and OOM, which throw redis_unavailable. When the connection was
  /// found closed by the peer (an idle connection across a server restart) and
  /// `idempotent` is true, the pipeline is sent once more on a new connection;
  /// otherwise the failure throws redis_unavailable.
  std::vector<redis_reply> pipeline(const std::vector<std::vector<std::string>>& cmds,
                                    bool idempotent = false);
  /// One command (a pipeline of one).
  redis_reply command(const std::vector<std::string>& args, bool idempotent = false);

  const redis_connection_options& options() const { return opts_; }
  /// Successful connects so far (the first one included).
  uint64_t connects() const { return connects_; }

 private:
  friend class redis_pool;
  redis_connection(redis_connection_options opts, std::shared_ptr<detail::redis_gate> gate);
  /// True when a new connection was opened.
  bool ensure_connected();
  void open();

  redis_connection_options opts_;
  std::shared_ptr<detail::redis_gate> gate_;
  redisContext* ctx_ = nullptr;
  uint64_t connects_ = 0;
};

/// `size` connections shared by threads: acquire() lends one exclusively
/// (RAII lease), returning it when the lease ends. Connections connect lazily
/// and share one reconnect backoff: while Redis is down, every lease fails
/// fast instead of each connection waiting for its own timeout. The pool must
/// outlive its leases.
class redis_pool {
 public:
  redis_pool(redis_connection_options opts, size_t size);
  ~redis_pool();
  redis_pool(const redis_pool&) = delete;
  redis_pool& operator=(const redis_pool&) = delete;

  class lease {
   public:
    lease(lease&& other) noexcept;
    lease& operator=(lease&& other) noexcept;
    ~lease();
    lease(const lease&) = delete;
    lease& operator=(const lease&) = delete;
    redis_connection& operator*() const { return *conn_; }
    redis_connection* operator->() const { return conn_; }

   private:
    friend class redis_pool;
    lease(redis_pool* pool, redis_connection* conn) : pool_(pool), conn_(conn) {}
    redis_pool* pool_ = nullptr;
    redis_connection* conn_ = nullptr;
  };

  /// Waits up to options().acquire_timeout for a free connection; throws
  /// redis_unavailable when none frees up. Thread-safe.
  lease acquire();
  /// A free connection, or nullopt at once.
  std::optional<lease> try_acquire();

  /// PING on one connection (connecting it): throws redis_unavailable / redis_error.
  void check();

  size_t size() const { return all_.size(); }
  /// Connections not lent out now.
  size_t idle() const;
  const redis_connection_options& options() const { return opts_; }

 private:
  void give_back(redis_connection* c) noexcept;

  redis_connection_options opts_;
  std::shared_ptr<detail::redis_gate> gate_;
  std::vector<std::unique_ptr<redis_connection>> all_;
  mutable std::mutex mtx_;
  std::condition_variable freed_;
  std::vector<redis_connection*> idle_;
};

}  // namespace fraiseql
