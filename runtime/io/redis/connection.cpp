#include "runtime/io/redis/connection.hpp"

#include "runtime/core/backoff.hpp"
#include "runtime/core/redis_url.hpp"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>

#include <csignal>

#include <sys/time.h>
#include <unistd.h>

namespace fraiseql {

namespace detail {

/// Reconnect backoff shared by the connections of one pool (or owned by a
/// standalone connection): after a failure, connection attempts are refused
/// until retry_at, so a dead server costs callers nothing but an exception.
struct redis_gate {
  std::mutex mtx;
  uint32_t failures = 0;
  std::chrono::steady_clock::time_point retry_at{};
  std::string last_error;
};

}  // namespace detail

namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

timeval to_timeval(milliseconds d) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(d.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((d.count() % 1000) * 1000);
  return tv;
}

redis_reply convert(const redisReply* r) {
  redis_reply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = redis_reply::kind::string;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = redis_reply::kind::status;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = redis_reply::kind::error;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = redis_reply::kind::integer;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = redis_reply::kind::array;
      out.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(convert(r->element[i]));
      break;
    default:
      out.type = redis_reply::kind::nil;
      break;
  }
  return out;
}

/// Error replies that say "the server cannot serve this now", not "this
/// command is wrong".
bool is_server_state_error(const std::string& e) {
  static const char* const prefixes[] = {"LOADING",  "BUSY", "MASTERDOWN", "TRYAGAIN",
                                         "READONLY", "OOM ", "CLUSTERDOWN"};
  for (const char* p : prefixes) {
    const size_t n = std::char_traits<char>::length(p);
    if (e.compare(0, n, p) == 0) {
      // "BUSY" must not match "BUSYKEY" (a real command error).
      if (n == 4 && e.size() > 4 && e[4] != ' ') continue;
      return true;
    }
  }
  return false;
}

struct io_failure {
  int code = 0;       // REDIS_ERR_*
  int sys_errno = 0;  // errno when code == REDIS_ERR_IO
  std::string text;
  size_t received = 0;
};

/// Appends every command, flushes them in one write and reads every reply.
bool exchange(redisContext* c, const std::vector<std::vector<std::string>>& cmds,
              std::vector<redis_reply>& out, io_failure& f) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const auto& cmd : cmds) {
    argv.clear();
    lens.clear();
    for (const auto& a : cmd) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    if (redisAppendCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data()) !=
        REDIS_OK) {
      f.code = c->err;
      f.text = c->errstr[0] ? c->errstr : "cannot format command";
      return false;
    }
  }
  out.reserve(out.size() + cmds.size());
  for (size_t i = 0; i < cmds.size(); ++i) {
    void* raw = nullptr;
    if (redisGetReply(c, &raw) != REDIS_OK || raw == nullptr) {
      f.sys_errno = errno;
      f.code = c->err;
      f.text = c->errstr[0] ? c->errstr : "no reply";
      if (f.code == REDIS_ERR_IO && (f.sys_errno == EAGAIN || f.sys_errno == EWOULDBLOCK))
        f.text = "command timed out";
      f.received = i;
      if (raw) freeReplyObject(raw);
      return false;
    }
    out.push_back(convert(static_cast<const redisReply*>(raw)));
    freeReplyObject(raw);
  }
  return true;
}

void gate_failed(detail::redis_gate& g, const redis_connection_options& o,
                 const std::string& error) {
  std::lock_guard<std::mutex> lk(g.mtx);
  ++g.failures;
  g.retry_at = steady_clock::now() +
               doubling_delay(o.reconnect_initial_delay, o.reconnect_max_delay, g.failures);
  g.last_error = error;
}

void gate_ok(detail::redis_gate& g) {
  std::lock_guard<std::mutex> lk(g.mtx);
  g.failures = 0;
}

}  // namespace

std::string describe(const redis_reply& r) {
  switch (r.type) {
    case redis_reply::kind::nil:
      return "nil";
    case redis_reply::kind::status:
      return "status " + r.str;
    case redis_reply::kind::error:
      return "error " + r.str;
    case redis_reply::kind::integer:
      return "integer " + std::to_string(r.integer);
    case redis_reply::kind::string:
      return "string of " + std::to_string(r.str.size()) + " bytes";
    case redis_reply::kind::array:
      return "array of " + std::to_string(r.elements.size());
  }
  return "?";
}

// --- connection -----------------------------------------------------------------------

redis_connection::redis_connection(redis_connection_options opts)
    : redis_connection(std::move(opts), std::make_shared<detail::redis_gate>()) {}

redis_connection::redis_connection(redis_connection_options opts,
                                   std::shared_ptr<detail::redis_gate> gate)
    : opts_(std::move(opts)), gate_(std::move(gate)) {
  // hiredis writes with write(2): on a connection the server reset, SIGPIPE
  // would kill the process. Ignore it (once, and only if nobody handles it).
  static std::once_flag sigpipe_once;
  std::call_once(sigpipe_once, [] {
    struct sigaction old {};
    if (sigaction(SIGPIPE, nullptr, &old) == 0 && old.sa_handler == SIG_DFL)
      std::signal(SIGPIPE, SIG_IGN);
  });
  if (opts_.url.host.empty()) throw std::invalid_argument("redis: no host");
  if (opts_.connect_timeout.count() <= 0 || opts_.command_timeout.count() <= 0)
    throw std::invalid_argument("redis: connect and command timeouts must be positive");
  if (opts_.reconnect_initial_delay.count() <= 0)
    throw std::invalid_argument("redis: reconnect_initial_delay must be positive");
}

redis_connection::~redis_connection() {
  reset();
}

void redis_connection::reset() {
  if (ctx_) redisFree(ctx_);
  ctx_ = nullptr;
}

void redis_connection::connect() {
  ensure_connected();
}

void redis_connection::open() {
  const redis_url& u = opts_.url;
  redisContext* c =
      redisConnectWithTimeout(u.host.c_str(), u.port, to_timeval(opts_.connect_timeout));
  if (c == nullptr)
    throw redis_unavailable("redis at " + u.endpoint() + ": cannot allocate a connection");
  if (c->err) {
    std::string e = c->errstr;
    redisFree(c);
    throw redis_unavailable("cannot connect to redis at " + u.endpoint() + ": " + e);
  }
  redisSetTimeout(c, to_timeval(opts_.command_timeout));
  redisEnableKeepAlive(c);
  ctx_ = c;
  std::vector<std::vector<std::string>> setup;
  if (!u.password.empty()) {
    if (u.username.empty())
      setup.push_back({"AUTH", u.password});
    else
      setup.push_back({"AUTH", u.username, u.password});
  }
  if (u.db != 0) setup.push_back({"SELECT", std::to_string(u.db)});
  if (setup.empty()) return;
  std::vector<redis_reply> replies;
  io_failure f;
  if (!exchange(ctx_, setup, replies, f)) {
    reset();
    throw redis_unavailable("redis at " + u.endpoint() + ": " + f.text + " (while authenticating)");
  }
  for (size_t i = 0; i < replies.size(); ++i) {
    if (!replies[i].is_error()) continue;
    const std::string what =
        setup[i][0] == "AUTH"
            ? "AUTH" + (u.username.empty() ? std::string() : " as user '" + u.username + "'") +
                  " refused"
            : "SELECT " + std::to_string(u.db) + " refused";
    const std::string msg = "redis at " + u.endpoint() + ": " + what + ": " + replies[i].str;
    reset();
    if (is_server_state_error(replies[i].str)) throw redis_unavailable(msg);
    throw redis_error(msg);
  }
}

bool redis_connection::ensure_connected() {
  if (ctx_) return false;
  {
    std::lock_guard<std::mutex> lk(gate_->mtx);
    const auto now = steady_clock::now();
    if (gate_->failures > 0 && now < gate_->retry_at) {
      const auto wait = std::chrono::duration_cast<milliseconds>(gate_->retry_at - now).count();
      throw redis_unavailable("redis at " + opts_.url.endpoint() + " unavailable (" +
                              gate_->last_error + "); next connection attempt in " +
                              std::to_string(wait) + " ms");
    }
  }
  try {
    open();
  } catch (const redis_unavailable& e) {
    gate_failed(*gate_, opts_, e.what());
    throw;
  }
  ++connects_;
  return true;
}

std::vector<redis_reply> redis_connection::pipeline(
    const std::vector<std::vector<std::string>>& cmds, bool idempotent) {
  if (cmds.empty()) return {};
  for (const auto& cmd : cmds)
    if (cmd.empty()) throw std::invalid_argument("redis: empty command in a pipeline");
  for (int attempt = 0;; ++attempt) {
    const bool fresh = ensure_connected();
    std::vector<redis_reply> out;
    io_failure f;
    if (exchange(ctx_, cmds, out, f)) {
      gate_ok(*gate_);
      for (const auto& r : out)
        if (r.is_error() && is_server_state_error(r.str))
          throw redis_unavailable("redis at " + opts_.url.endpoint() + ": " + r.str);
      return out;
    }
    reset();
    const bool peer_closed =
        f.code == REDIS_ERR_EOF ||
        (f.code == REDIS_ERR_IO && (f.sys_errno == ECONNRESET || f.sys_errno == EPIPE));
    // An idle connection that outlived a server restart fails on first use:
    // one more try on a new connection, when resending is harmless.
    if (idempotent && attempt == 0 && !fresh && peer_closed) continue;
    std::string msg = "redis at " + opts_.url.endpoint() + ": " + f.text;
    if (cmds.size() > 1)
      msg += " (" + std::to_string(f.received) + " of " + std::to_string(cmds.size()) +
             " replies received)";
    gate_failed(*gate_, opts_, msg);
    throw redis_unavailable(msg);
  }
}

redis_reply redis_connection::command(const std::vector<std::string>& args, bool idempotent) {
  return std::move(pipeline({args}, idempotent).front());
}

// --- pool -----------------------------------------------------------------------------

redis_pool::redis_pool(redis_connection_options opts, size_t size)
    : opts_(std::move(opts)), gate_(std::make_shared<detail::redis_gate>()) {
  if (size == 0) throw std::invalid_argument("redis pool_size must be at least 1");
  all_.reserve(size);
  for (size_t i = 0; i < size; ++i) {
    all_.emplace_back(new redis_connection(opts_, gate_));
    idle_.push_back(all_.back().get());
  }
}

redis_pool::~redis_pool() = default;

redis_pool::lease::lease(lease&& other) noexcept : pool_(other.pool_), conn_(other.conn_) {
  other.pool_ = nullptr;
  other.conn_ = nullptr;
}

redis_pool::lease& redis_pool::lease::operator=(lease&& other) noexcept {
  if (this != &other) {
    if (pool_ && conn_) pool_->give_back(conn_);
    pool_ = other.pool_;
    conn_ = other.conn_;
    other.pool_ = nullptr;
    other.conn_ = nullptr;
  }
  return *this;
}

redis_pool::lease::~lease() {
  if (pool_ && conn_) pool_->give_back(conn_);
}

redis_pool::lease redis_pool::acquire() {
  std::unique_lock<std::mutex> lk(mtx_);
  if (!freed_.wait_for(lk, opts_.acquire_timeout, [this] { return !idle_.empty(); }))
    throw redis_unavailable("all " + std::to_string(all_.size()) +
                            " redis connections stayed busy for " +
                            std::to_string(opts_.acquire_timeout.count()) + " ms");
  redis_connection* c = idle_.back();
  idle_.pop_back();
  return lease(this, c);
}

std::optional<redis_pool::lease> redis_pool::try_acquire() {
  std::lock_guard<std::mutex> lk(mtx_);
  if (idle_.empty()) return std::nullopt;
  redis_connection* c = idle_.back();
  idle_.pop_back();
  return lease(this, c);
}

void redis_pool::give_back(redis_connection* c) noexcept {
  {
    std::lock_guard<std::mutex> lk(mtx_);
    idle_.push_back(c);
  }
  freed_.notify_one();
}

size_t redis_pool::idle() const {
  std::lock_guard<std::mutex> lk(mtx_);
  return idle_.size();
}

void redis_pool::check() {
  auto c = acquire();
  redis_reply r = c->command({"PING"}, true);
  if (!(r.type == redis_reply::kind::status && r.str == "PONG"))
    throw redis_error("redis at " + opts_.url.endpoint() + ": PING answered " + describe(r));
}

}  // namespace fraiseql
