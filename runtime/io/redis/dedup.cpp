#include "runtime/io/redis/dedup.hpp"
#include "runtime/core/dedup.hpp"
#include "runtime/core/redis_url.hpp"
#include "runtime/io/redis/connection.hpp"

#include <algorithm>
#include <numeric>
#include <stdexcept>

namespace fraiseql {

namespace {

using std::chrono::milliseconds;

constexpr const char* done_value = dedup_done_value;

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

// Claims of an earlier generation of the caller's lineage (runtime/core/dedup.hpp,
// supersedes) become the caller's; the caller's own claim stays; 1 = claimed.
// "done", no value (the retry takes it) and other owners' claims: 0.
constexpr const char* takeover_lua = R"lua(
local function lineage(t)
  local g, f = string.match(t, '^e(%d+)|[^|]*|(.+)$')
  if g then return tonumber(g), f end
end
local mg, mf = lineage(ARGV[1])
local out = {}
for i, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  out[i] = 0
  if v == ARGV[1] then
    out[i] = 1
  elseif v and v ~= 'done' and mg then
    local g, f = lineage(v)
    if g and f == mf and g < mg then
      redis.call('SET', k, ARGV[1], 'PX', ARGV[2]); out[i] = 1
    end
  end
end
return out
)lua";

/// Keys per script run: bounds how long one run holds the server (~0.2 ms).
constexpr size_t script_chunk = 256;

constexpr const char* script_bodies[] = {confirm_lua, release_lua, extend_lua, takeover_lua};
constexpr const char* script_names[] = {"confirm", "release", "extend", "takeover"};

}  // namespace

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
  std::vector<size_t> takeover;  // held by an earlier generation of our lineage
  {
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
        else if (supersedes(owner, v.str))
          takeover.push_back(look[k]);
        // another owner: busy
      } else if (!v.is_nil()) {
        throw redis_error("redis dedup: GET of " + dedup_key(event_ids[look[k]]) + " answered " +
                          describe(v));
      }
      // nil: the claim vanished between SET and GET (expired or released): busy,
      // the retry will take it.
    }
  }
  if (takeover.empty()) return out;
  // One more round trip, only after a predecessor died holding claims: the
  // script re-checks each value atomically (it may have changed since the GET).
  std::vector<std::string> ids;
  ids.reserve(takeover.size());
  for (size_t i : takeover) ids.push_back(event_ids[i]);
  const auto taken = run_script(takeover_script, ids, owner, px);
  for (size_t k = 0; k < takeover.size(); ++k)
    if (taken[k] == 1) out[takeover[k]] = claim_status::claimed;
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

}  // namespace fraiseql
