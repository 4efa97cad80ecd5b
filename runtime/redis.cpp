#include "runtime/redis.hpp"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <numeric>
#include <random>

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

constexpr const char* done_value = "done";

[[noreturn]] void url_error(const std::string& shown, const std::string& what) {
  throw std::invalid_argument("redis url '" + shown + "': " + what);
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    const int hi = hex_digit(s[i + 1]);
    const int lo = hex_digit(s[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

/// Digits only, value in [min, max].
std::optional<uint64_t> parse_number(std::string_view s, uint64_t min, uint64_t max) {
  if (s.empty() || s.size() > 10) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v < min || v > max) return std::nullopt;
  return v;
}

timeval to_timeval(milliseconds d) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(d.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((d.count() % 1000) * 1000);
  return tv;
}

milliseconds doubling_delay(milliseconds initial, milliseconds max, uint32_t failures) {
  milliseconds d = initial;
  for (uint32_t i = 1; i < failures && d < max; ++i) d *= 2;
  return std::min(d, max);
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

void check_string_arg(const std::string& s, const char* what) {
  if (s.empty()) throw std::invalid_argument(std::string("redis dedup: empty ") + what);
}

// The protocol's compare-and-set steps, over many events per call (one
// script run per chunk of a batch: a Lua call costs far more than the GET/SET
// it wraps). KEYS = event:<id>..., ARGV[1] = owner, ARGV[2] = TTL in ms.
// Returns one integer per key.
constexpr const char* confirm_lua = R"lua(
local out = {}
for i, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  if v == ARGV[1] then
    redis.call('SET', k, 'done', 'PX', ARGV[2]); out[i] = 0
  elseif not v then
    redis.call('SET', k, 'done', 'PX', ARGV[2]); out[i] = 1
  elseif v == 'done' then
    out[i] = 2
  else
    out[i] = 3
  end
end
return out
)lua";

constexpr const char* release_lua = R"lua(
local out = {}
for i, k in ipairs(KEYS) do
  if redis.call('GET', k) == ARGV[1] then out[i] = redis.call('DEL', k) else out[i] = 0 end
end
return out
)lua";

constexpr const char* extend_lua = R"lua(
local out = {}
for i, k in ipairs(KEYS) do
  if redis.call('GET', k) == ARGV[1] then
    out[i] = redis.call('PEXPIRE', k, ARGV[2])
  else
    out[i] = 0
  end
end
return out
)lua";

/// Keys per script run: bounds how long one run holds the server (~0.2 ms).
constexpr size_t script_chunk = 256;

constexpr const char* script_bodies[] = {confirm_lua, release_lua, extend_lua};
constexpr const char* script_names[] = {"confirm", "release", "extend"};

}  // namespace

// --- URL ------------------------------------------------------------------------------

bool redis_tls_supported() {
  // hiredis gained TLS in 1.0 (a separate hiredis_ssl library); Debian 12 ships
  // 0.14.1 without it, and this build does not link one.
  return false;
}

std::string redact_redis_url(const std::string& url) {
  const size_t sep = url.find("://");
  const size_t start = sep == std::string::npos ? 0 : sep + 3;
  const size_t at = url.rfind('@');
  if (at == std::string::npos || at < start) return url;
  const std::string userinfo = url.substr(start, at - start);
  const size_t colon = userinfo.find(':');
  // No ':' may mean "redis://password@host": mask it all.
  const std::string masked =
      colon == std::string::npos ? "***" : userinfo.substr(0, colon) + ":***";
  return url.substr(0, start) + masked + url.substr(at);
}

redis_url redis_url::parse(const std::string& url) {
  const std::string shown = redact_redis_url(url);
  const size_t sep = url.find("://");
  if (sep == std::string::npos)
    url_error(shown, "expected redis://[[user]:password@]host[:port][/db]");
  std::string scheme = url.substr(0, sep);
  std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  redis_url u;
  if (scheme == "rediss") {
    u.tls = true;
    if (!redis_tls_supported())
      url_error(shown, "TLS (rediss://) is not supported by this build's hiredis (" +
                           std::to_string(HIREDIS_MAJOR) + "." + std::to_string(HIREDIS_MINOR) +
                           "." + std::to_string(HIREDIS_PATCH) +
                           ", built without SSL); use redis:// on a trusted network or through "
                           "a TLS tunnel (stunnel, spiped)");
  } else if (scheme != "redis") {
    url_error(shown, "unsupported scheme '" + scheme + "' (expected redis:// or rediss://)");
  }
  std::string_view rest(url);
  rest.remove_prefix(sep + 3);
  // The last '@' ends the user info: a raw '@', '/' or '?' in a password
  // still parses (and is still masked in messages).
  const size_t at = rest.rfind('@');
  if (at != std::string_view::npos) {
    const std::string_view userinfo = rest.substr(0, at);
    rest.remove_prefix(at + 1);
    const size_t colon = userinfo.find(':');
    if (colon == std::string_view::npos)
      url_error(shown,
                "the part before '@' has no ':' (write redis://:password@host or "
                "redis://user:password@host)");
    auto user = percent_decode(userinfo.substr(0, colon));
    if (!user) url_error(shown, "invalid percent-escape in the user name");
    auto password = percent_decode(userinfo.substr(colon + 1));
    if (!password) url_error(shown, "invalid percent-escape in the password");
    if (password->empty()) url_error(shown, "empty password after ':'");
    u.username = std::move(*user);
    u.password = std::move(*password);
  }
  if (rest.find_first_of("?#") != std::string_view::npos)
    url_error(shown,
              "query parameters and fragments are not supported (the database goes in the "
              "path: redis://host:6379/2)");
  const size_t slash = rest.find('/');
  const std::string_view hostport = rest.substr(0, slash);
  const std::string_view path =
      slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
  std::optional<std::string_view> port;
  if (!hostport.empty() && hostport[0] == '[') {
    const size_t close = hostport.find(']');
    if (close == std::string_view::npos) url_error(shown, "unterminated '[' in the host");
    u.host = std::string(hostport.substr(1, close - 1));
    const std::string_view after = hostport.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') url_error(shown, "unexpected text after ']'");
      port = after.substr(1);
    }
  } else {
    const size_t colon = hostport.find(':');
    if (colon != std::string_view::npos) {
      if (hostport.find(':', colon + 1) != std::string_view::npos)
        url_error(shown, "an IPv6 address goes in brackets: redis://[::1]:6379");
      port = hostport.substr(colon + 1);
    }
    u.host = std::string(hostport.substr(0, colon));
  }
  if (u.host.empty()) url_error(shown, "missing host");
  if (port) {
    auto p = parse_number(*port, 1, 65535);
    if (!p) url_error(shown, "port '" + std::string(*port) + "' is not a number in 1..65535");
    u.port = static_cast<uint16_t>(*p);
  }
  if (!path.empty()) {
    auto db = parse_number(path, 0, 2147483647);
    if (!db)
      url_error(shown,
                "database '" + std::string(path) + "' is not a number (expected /0, /1, ...)");
    u.db = static_cast<uint32_t>(*db);
  }
  return u;
}

std::string redis_url::endpoint() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string redis_url::to_string() const {
  std::string out = tls ? "rediss://" : "redis://";
  if (!password.empty()) out += username + ":***@";
  out += endpoint();
  out += "/" + std::to_string(db);
  return out;
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

// --- dedup ----------------------------------------------------------------------------

std::chrono::steady_clock::time_point steady_now() {
  return std::chrono::steady_clock::now();
}

const char* to_string(claim_status s) {
  switch (s) {
    case claim_status::claimed:
      return "claimed";
    case claim_status::done:
      return "done";
    case claim_status::busy:
      return "busy";
  }
  return "?";
}

const char* to_string(confirm_status s) {
  switch (s) {
    case confirm_status::confirmed:
      return "confirmed";
    case confirm_status::confirmed_after_expiry:
      return "confirmed_after_expiry";
    case confirm_status::already_done:
      return "already_done";
    case confirm_status::lost:
      return "lost";
  }
  return "?";
}

std::string dedup_key(const std::string& event_id) {
  return "event:" + event_id;
}

std::string make_owner_token(const std::string& name) {
  static thread_local std::mt19937_64 rng{[] {
    std::random_device rd;
    return (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }()};
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(rng()));
  return name + ":" + std::to_string(::getpid()) + ":" + hex;
}

dedup_store::dedup_store(std::chrono::milliseconds window) : window_(window) {
  if (window.count() <= 0) throw std::invalid_argument("dedup window must be positive");
}

void dedup_store::check_args(const std::vector<std::string>& event_ids, const std::string& owner,
                             std::chrono::milliseconds ttl) {
  check_string_arg(owner, "owner token");
  if (owner == done_value)
    throw std::invalid_argument("redis dedup: owner token must not be \"done\"");
  if (ttl.count() <= 0) throw std::invalid_argument("redis dedup: TTL must be positive");
  for (const auto& id : event_ids) check_string_arg(id, "event id");
}

confirm_status dedup_store::confirm(const std::string& event_id, const std::string& owner) {
  return confirm_all(std::vector<std::string>{event_id}, owner).front();
}

bool dedup_store::release(const std::string& event_id, const std::string& owner) {
  return release_all(std::vector<std::string>{event_id}, owner).front();
}

// --- redis_dedup ----------------------------------------------------------------------

redis_dedup::redis_dedup(redis_pool& pool, std::chrono::milliseconds window)
    : dedup_store(window), pool_(pool) {}

std::vector<claim_status> redis_dedup::claim(const std::vector<std::string>& event_ids,
                                             const std::string& owner,
                                             std::chrono::milliseconds claim_ttl) {
  check_args(event_ids, owner, claim_ttl);
  std::vector<claim_status> out(event_ids.size(), claim_status::busy);
  if (event_ids.empty()) return out;
  const std::string px = std::to_string(claim_ttl.count());
  std::vector<std::vector<std::string>> cmds;
  cmds.reserve(event_ids.size());
  for (const auto& id : event_ids) cmds.push_back({"SET", dedup_key(id), owner, "NX", "PX", px});
  auto c = pool_.acquire();
  // Resending is harmless: a SET NX that already took effect shows up below
  // as our own token.
  const auto replies = c->pipeline(cmds, true);
  std::vector<size_t> look;
  for (size_t i = 0; i < replies.size(); ++i) {
    if (replies[i].is_ok())
      out[i] = claim_status::claimed;
    else if (replies[i].is_nil())
      look.push_back(i);
    else
      throw redis_error("redis dedup: SET NX of " + dedup_key(event_ids[i]) + " answered " +
                        describe(replies[i]));
  }
  if (look.empty()) return out;
  cmds.clear();
  for (size_t i : look) cmds.push_back({"GET", dedup_key(event_ids[i])});
  const auto values = c->pipeline(cmds, true);
  for (size_t k = 0; k < look.size(); ++k) {
    const redis_reply& v = values[k];
    if (v.type == redis_reply::kind::string) {
      if (v.str == done_value)
        out[look[k]] = claim_status::done;
      else if (v.str == owner)
        out[look[k]] = claim_status::claimed;
      // another owner: busy
    } else if (!v.is_nil()) {
      throw redis_error("redis dedup: GET of " + dedup_key(event_ids[look[k]]) + " answered " +
                        describe(v));
    }
    // nil: the claim vanished between SET and GET (expired or released): busy,
    // the retry will take it.
  }
  return out;
}

std::string redis_dedup::script_sha(redis_connection& c, script_id id, bool reload) {
  std::lock_guard<std::mutex> lk(sha_mtx_);
  if (!reload && !sha_[id].empty()) return sha_[id];
  redis_reply r = c.command({"SCRIPT", "LOAD", script_bodies[id]}, true);
  if (r.type != redis_reply::kind::string)
    throw redis_error(std::string("redis dedup: SCRIPT LOAD of the ") + script_names[id] +
                      " script answered " + describe(r));
  sha_[id] = r.str;
  return sha_[id];
}

std::vector<long long> redis_dedup::run_script(script_id id,
                                               const std::vector<std::string>& event_ids,
                                               const std::string& owner, const std::string& arg) {
  std::vector<long long> out(event_ids.size(), 0);
  if (event_ids.empty()) return out;
  auto c = pool_.acquire();
  std::string sha = script_sha(*c, id, false);
  // Chunk k covers event_ids[k * script_chunk, ...): one EVALSHA each, pipelined.
  std::vector<size_t> todo((event_ids.size() + script_chunk - 1) / script_chunk);
  std::iota(todo.begin(), todo.end(), size_t{0});
  std::vector<std::vector<std::string>> cmds;
  for (int round = 0; round < 2 && !todo.empty(); ++round) {
    if (round > 0) sha = script_sha(*c, id, true);
    cmds.clear();
    for (size_t k : todo) {
      const size_t begin = k * script_chunk;
      const size_t end = std::min(event_ids.size(), begin + script_chunk);
      std::vector<std::string> cmd;
      cmd.reserve(end - begin + 5);
      cmd.push_back("EVALSHA");
      cmd.push_back(sha);
      cmd.push_back(std::to_string(end - begin));
      for (size_t i = begin; i < end; ++i) cmd.push_back(dedup_key(event_ids[i]));
      cmd.push_back(owner);
      cmd.push_back(arg);
      cmds.push_back(std::move(cmd));
    }
    const auto replies = c->pipeline(cmds, true);
    std::vector<size_t> again;
    for (size_t j = 0; j < todo.size(); ++j) {
      const redis_reply& r = replies[j];
      const size_t begin = todo[j] * script_chunk;
      const size_t n = std::min(event_ids.size(), begin + script_chunk) - begin;
      if (r.is_error() && r.str.compare(0, 8, "NOSCRIPT") == 0) {
        again.push_back(todo[j]);  // not run: the server lost its script cache (restart)
        continue;
      }
      const bool well_formed =
          r.type == redis_reply::kind::array && r.elements.size() == n &&
          std::all_of(r.elements.begin(), r.elements.end(),
                      [](const redis_reply& e) { return e.type == redis_reply::kind::integer; });
      if (!well_formed)
        throw redis_error(std::string("redis dedup: the ") + script_names[id] + " script on " +
                          std::to_string(n) + " keys from " + dedup_key(event_ids[begin]) +
                          " answered " + describe(r));
      for (size_t i = 0; i < n; ++i) out[begin + i] = r.elements[i].integer;
    }
    todo = std::move(again);
  }
  if (!todo.empty())
    throw redis_error(std::string("redis dedup: the ") + script_names[id] +
                      " script stays unknown to the server after SCRIPT LOAD");
  return out;
}

std::vector<bool> redis_dedup::extend(const std::vector<std::string>& event_ids,
                                      const std::string& owner,
                                      std::chrono::milliseconds claim_ttl) {
  check_args(event_ids, owner, claim_ttl);
  const auto r = run_script(extend_script, event_ids, owner, std::to_string(claim_ttl.count()));
  std::vector<bool> out(r.size());
  for (size_t i = 0; i < r.size(); ++i) out[i] = r[i] == 1;
  return out;
}

std::vector<confirm_status> redis_dedup::confirm_all(const std::vector<std::string>& event_ids,
                                                     const std::string& owner) {
  check_args(event_ids, owner, window());
  const auto r = run_script(confirm_script, event_ids, owner, std::to_string(window().count()));
  std::vector<confirm_status> out(r.size());
  for (size_t i = 0; i < r.size(); ++i) {
    switch (r[i]) {
      case 0:
        out[i] = confirm_status::confirmed;
        break;
      case 1:
        out[i] = confirm_status::confirmed_after_expiry;
        break;
      case 2:
        out[i] = confirm_status::already_done;
        break;
      default:
        out[i] = confirm_status::lost;
        break;
    }
  }
  return out;
}

std::vector<bool> redis_dedup::release_all(const std::vector<std::string>& event_ids,
                                           const std::string& owner) {
  check_args(event_ids, owner, window());
  const auto r = run_script(release_script, event_ids, owner, "0");
  std::vector<bool> out(r.size());
  for (size_t i = 0; i < r.size(); ++i) out[i] = r[i] == 1;
  return out;
}

// --- memory_dedup ---------------------------------------------------------------------

memory_dedup::memory_dedup(std::chrono::milliseconds window, steady_clock_fn clock)
    : dedup_store(window), clock_(std::move(clock)) {
  if (!clock_) throw std::invalid_argument("memory_dedup: no clock");
}

memory_dedup::entry* memory_dedup::live(const std::string& key,
                                        std::chrono::steady_clock::time_point now) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return nullptr;
  if (it->second.expires <= now) {
    entries_.erase(it);
    return nullptr;
  }
  return &it->second;
}

void memory_dedup::maybe_sweep(std::chrono::steady_clock::time_point now) {
  // A full pass once per size() operations: amortized O(1), and the map never
  // holds more than the live entries plus one pass worth of expired ones.
  if (ops_since_sweep_ < entries_.size()) return;
  ops_since_sweep_ = 0;
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->second.expires <= now)
      it = entries_.erase(it);
    else
      ++it;
  }
}

std::vector<claim_status> memory_dedup::claim(const std::vector<std::string>& event_ids,
                                              const std::string& owner,
                                              std::chrono::milliseconds claim_ttl) {
  check_args(event_ids, owner, claim_ttl);
  std::lock_guard<std::mutex> lk(mtx_);
  const auto now = clock_();
  ops_since_sweep_ += event_ids.size();
  maybe_sweep(now);
  std::vector<claim_status> out;
  out.reserve(event_ids.size());
  for (const auto& id : event_ids) {
    entry* e = live(id, now);
    if (e == nullptr) {
      entries_[id] = entry{owner, now + claim_ttl};
      out.push_back(claim_status::claimed);
    } else if (e->value == done_value) {
      out.push_back(claim_status::done);
    } else if (e->value == owner) {
      out.push_back(claim_status::claimed);  // like Redis: the TTL is not refreshed
    } else {
      out.push_back(claim_status::busy);
    }
  }
  return out;
}

std::vector<bool> memory_dedup::extend(const std::vector<std::string>& event_ids,
                                       const std::string& owner,
                                       std::chrono::milliseconds claim_ttl) {
  check_args(event_ids, owner, claim_ttl);
  std::lock_guard<std::mutex> lk(mtx_);
  const auto now = clock_();
  std::vector<bool> out;
  out.reserve(event_ids.size());
  for (const auto& id : event_ids) {
    entry* e = live(id, now);
    const bool held = e != nullptr && e->value == owner;
    if (held) e->expires = now + claim_ttl;
    out.push_back(held);
  }
  return out;
}

std::vector<confirm_status> memory_dedup::confirm_all(const std::vector<std::string>& event_ids,
                                                      const std::string& owner) {
  check_args(event_ids, owner, window());
  std::lock_guard<std::mutex> lk(mtx_);
  const auto now = clock_();
  ops_since_sweep_ += event_ids.size();
  maybe_sweep(now);
  std::vector<confirm_status> out;
  out.reserve(event_ids.size());
  for (const auto& id : event_ids) {
    entry* e = live(id, now);
    if (e == nullptr) {
      entries_[id] = entry{done_value, now + window()};
      out.push_back(confirm_status::confirmed_after_expiry);
    } else if (e->value == owner) {
      *e = entry{done_value, now + window()};
      out.push_back(confirm_status::confirmed);
    } else if (e->value == done_value) {
      out.push_back(confirm_status::already_done);
    } else {
      out.push_back(confirm_status::lost);
    }
  }
  return out;
}

std::vector<bool> memory_dedup::release_all(const std::vector<std::string>& event_ids,
                                            const std::string& owner) {
  check_args(event_ids, owner, window());
  std::lock_guard<std::mutex> lk(mtx_);
  const auto now = clock_();
  std::vector<bool> out;
  out.reserve(event_ids.size());
  for (const auto& id : event_ids) {
    entry* e = live(id, now);
    const bool held = e != nullptr && e->value == owner;
    if (held) entries_.erase(id);
    out.push_back(held);
  }
  return out;
}

size_t memory_dedup::size() {
  std::lock_guard<std::mutex> lk(mtx_);
  const auto now = clock_();
  ops_since_sweep_ = entries_.size();
  maybe_sweep(now);
  return entries_.size();
}

// --- caches ---------------------------------------------------------------------------

std::string action_result_key(const std::string& key) {
  return "action_result:" + key;
}

result_cache::result_cache(std::chrono::milliseconds ttl) : ttl_(ttl) {
  if (ttl.count() <= 0) throw std::invalid_argument("cache TTL must be positive");
}

lru_ttl_cache::lru_ttl_cache(size_t capacity, std::chrono::milliseconds ttl, steady_clock_fn clock)
    : result_cache(ttl), capacity_(capacity), clock_(std::move(clock)) {
  if (capacity_ == 0) throw std::invalid_argument("lru_ttl_cache: capacity must be at least 1");
  if (!clock_) throw std::invalid_argument("lru_ttl_cache: no clock");
}

std::optional<std::string> lru_ttl_cache::get_locked(const std::string& key,
                                                     std::chrono::steady_clock::time_point now) {
  auto it = index_.find(key);
  if (it == index_.end()) {
    ++misses_;
    return std::nullopt;
  }
  if (it->second->expires <= now) {
    lru_.erase(it->second);
    index_.erase(it);
    ++misses_;
    return std::nullopt;
  }
  lru_.splice(lru_.begin(), lru_, it->second);
  ++hits_;
  return it->second->value;
}

std::optional<std::string> lru_ttl_cache::do_get(const std::string& key) {
  std::lock_guard<std::mutex> lk(mtx_);
  return get_locked(key, clock_());
}

std::vector<std::optional<std::string>> lru_ttl_cache::do_get_many(
    const std::vector<std::string>& keys) {
  std::lock_guard<std::mutex> lk(mtx_);
  const auto now = clock_();
  std::vector<std::optional<std::string>> out;
  out.reserve(keys.size());
  for (const auto& k : keys) out.push_back(get_locked(k, now));
  return out;
}

void lru_ttl_cache::do_put(const std::string& key, const std::string& value,
                           std::chrono::milliseconds ttl) {
  if (ttl.count() <= 0) throw std::invalid_argument("lru_ttl_cache: TTL must be positive");
  std::lock_guard<std::mutex> lk(mtx_);
  const auto expires = clock_() + ttl;
  auto it = index_.find(key);
  if (it != index_.end()) {
    it->second->value = value;
    it->second->expires = expires;
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  lru_.push_front(node{key, value, expires});
  index_.emplace(key, lru_.begin());
  while (lru_.size() > capacity_) {
    index_.erase(lru_.back().key);
    lru_.pop_back();
  }
}

size_t lru_ttl_cache::size() {
  std::lock_guard<std::mutex> lk(mtx_);
  return lru_.size();
}

uint64_t lru_ttl_cache::hits() {
  std::lock_guard<std::mutex> lk(mtx_);
  return hits_;
}

uint64_t lru_ttl_cache::misses() {
  std::lock_guard<std::mutex> lk(mtx_);
  return misses_;
}

redis_result_cache::redis_result_cache(redis_pool& pool, std::chrono::milliseconds ttl)
    : result_cache(ttl), pool_(pool) {}

std::optional<std::string> redis_result_cache::do_get(const std::string& key) {
  return do_get_many(std::vector<std::string>{key}).front();
}

std::vector<std::optional<std::string>> redis_result_cache::do_get_many(
    const std::vector<std::string>& keys) {
  std::vector<std::optional<std::string>> out(keys.size());
  if (keys.empty()) return out;
  std::vector<std::vector<std::string>> cmds;
  cmds.reserve(keys.size());
  for (const auto& k : keys) cmds.push_back({"GET", action_result_key(k)});
  auto c = pool_.acquire();
  const auto replies = c->pipeline(cmds, true);
  for (size_t i = 0; i < replies.size(); ++i) {
    if (replies[i].type == redis_reply::kind::string)
      out[i] = replies[i].str;
    else if (!replies[i].is_nil())
      throw redis_error("redis cache: GET of " + action_result_key(keys[i]) + " answered " +
                        describe(replies[i]));
  }
  return out;
}

void redis_result_cache::do_put(const std::string& key, const std::string& value,
                                std::chrono::milliseconds ttl) {
  if (ttl.count() <= 0) throw std::invalid_argument("redis cache: TTL must be positive");
  auto c = pool_.acquire();
  const redis_reply r =
      c->command({"SET", action_result_key(key), value, "PX", std::to_string(ttl.count())}, true);
  if (!r.is_ok())
    throw redis_error("redis cache: SET of " + action_result_key(key) + " answered " + describe(r));
}

// --- outage policy ----------------------------------------------------------------------

std::optional<redis_failure_policy> parse_redis_failure_policy(std::string_view s) {
  if (s == "fail_open" || s == "fail-open") return redis_failure_policy::fail_open;
  if (s == "fail_closed" || s == "fail-closed") return redis_failure_policy::fail_closed;
  return std::nullopt;
}

const char* to_string(redis_failure_policy p) {
  return p == redis_failure_policy::fail_open ? "fail_open" : "fail_closed";
}

redis_outage_tracker::redis_outage_tracker(redis_failure_policy policy,
                                           std::chrono::milliseconds initial_delay,
                                           std::chrono::milliseconds max_delay,
                                           std::chrono::milliseconds log_every)
    : policy_(policy), initial_(initial_delay), max_(max_delay), log_every_(log_every) {
  if (initial_.count() <= 0 || max_ < initial_)
    throw std::invalid_argument("redis outage: need 0 < initial_delay <= max_delay");
}

redis_outage_decision redis_outage_tracker::on_unavailable(
    std::chrono::steady_clock::time_point now) {
  redis_outage_decision d;
  ++unavailable_total_;
  if (consecutive_ == 0) {
    ++outages_total_;
    d.log = true;
    last_log_ = now;
  } else if (now - last_log_ >= log_every_) {
    d.log = true;
    last_log_ = now;
  }
  if (consecutive_ < UINT32_MAX) ++consecutive_;
  d.retry_after = doubling_delay(initial_, max_, consecutive_);
  if (policy_ == redis_failure_policy::fail_open) {
    d.proceed_without_redis = true;
    ++bypassed_total_;
  }
  return d;
}

bool redis_outage_tracker::on_success() {
  const bool ended = consecutive_ > 0;
  consecutive_ = 0;
  return ended;
}

}  // namespace fraiseql
