#include "runtime/io/pg/change_log.hpp"

#include "runtime/core/cursor.hpp"
#include "runtime/core/envelope.hpp"
#include "runtime/io/pg/guard.hpp"
#include "runtime/io/pg/session.hpp"

#include <boost/json.hpp>
#include <pqxx/pqxx>

#include <algorithm>
#include <limits>

namespace fraiseql {

namespace {

uint64_t parse_u64(const char* s) {
  return std::stoull(s);
}

}  // namespace

namespace {

constexpr const char* wake_channel = "fraiseql_observer";

/// Counts NOTIFYs on the wake-up channel; the payload carries nothing.
struct wake_receiver final : pqxx::notification_receiver {
  uint64_t count = 0;
  wake_receiver(pqxx::connection_base& c, const std::string& ch)
      : pqxx::notification_receiver(c, ch) {}
  void operator()(const std::string&, int) override { ++count; }
};

// One statement, one snapshot: branch 0 returns the snapshot itself, branch 2
// the unread rows of transactions that were running at earlier reads
// (runtime/core/cursor.hpp), branch 1 the rows after the cursor's position. Every
// row a statement sees is committed, so nothing waits for older transactions.
// Output columns carry distinct aliases: an ORDER BY name matching an output
// column would sort by that column (txid::text sorts "1003" before "999").
// Each row branch is bounded in bytes as well as in rows: the innermost query
// takes up to $3 rows in fence order and turns their bodies into text once;
// the next level sizes them (object_data plus object_data_before, as text:
// what the node receives) and keeps a running total; the outer level returns
// the rows that start within the byte room (ROOM; the first row always does,
// so one row larger than the room still moves), and for a row over the
// per-event limit (MAX) its size without its body (it goes to the DLQ). So a
// read never transfers more than the room plus one row of at most MAX bytes,
// whatever batch_size is. Text is built once per row on the server; the rows
// cut by the room cost that conversion, which the listener keeps small by
// asking for fewer rows when rows are large (change_log_reader::read).
#define OBSERVER_SIZED_ROWS(PART, WHERE, ROOM, MAX)                                            \
  "SELECT " PART                                                                               \
  ", s.pk AS pk_value, s.txid::text AS txid_text, s.id::text AS id_text,"                      \
  " s.object_type::text AS type_text, s.modification_type::text AS mod_text,"                  \
  " coalesce(s.object_id::text, '') AS object_id_text,"                                        \
  " CASE WHEN s.sz > " MAX                                                                     \
  " THEN '' ELSE coalesce(s.d, '') END AS data_text,"                                          \
  " CASE WHEN s.sz > " MAX                                                                     \
  " THEN '' ELSE coalesce(s.b, '') END AS before_text,"                                        \
  " to_char(s.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS ts_text," \
  " s.tenant_id::text AS tenant_text, s.user_id::text AS user_text,"                           \
  " s.trace_id::text AS trace_text, NULL::text AS snap_text, s.sz AS size_bytes,"              \
  " s.rp AS replay_text"                                                                       \
  " FROM (SELECT w.*, sum(CASE WHEN w.sz > " MAX                                               \
  " THEN 0 ELSE w.sz END)"                                                                     \
  "   OVER (ORDER BY w.txid, w.pk ROWS UNBOUNDED PRECEDING) AS run"                            \
  "   FROM (SELECT x.*, coalesce(octet_length(x.d), 0) + coalesce(octet_length(x.b), 0) AS sz" \
  "     FROM (SELECT c.pk_entity_change_log AS pk, c.txid, c.id, c.object_type,"               \
  "       c.modification_type, c.object_id, c.object_data::text AS d,"                         \
  "       c.object_data_before::text AS b, c.created_at, c.tenant_id, c.user_id, c.trace_id,"  \
  "       (c.extra_metadata -> 'fraiseql_replay')::text AS rp"                                 \
  "       " WHERE                                                                              \
  " ORDER BY c.txid, c.pk_entity_change_log LIMIT $3) x) w) s"                                 \
  " WHERE s.run - (CASE WHEN s.sz > " MAX " THEN 0 ELSE s.sz END) < " ROOM
#define OBSERVER_SNAPSHOT_ROW                                                            \
  "SELECT 0 AS part, NULL::bigint, NULL::text, NULL::text, NULL::text, NULL::text,"      \
  " NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text," \
  " pg_current_snapshot()::text, NULL::bigint, NULL::text"
#define OBSERVER_MAIN_WHERE                                                                    \
  "FROM core.tb_entity_change_log c WHERE (c.txid, c.pk_entity_change_log) > ($1::text::xid8," \
  " $2::bigint)"
#define OBSERVER_PENDING_WHERE                                                         \
  "FROM core.tb_entity_change_log c JOIN unnest($4::text::xid8[], $5::text::bigint[])" \
  " AS u(t, k) ON c.txid = u.t AND c.pk_entity_change_log > u.k"

constexpr const char* read_sql = OBSERVER_SNAPSHOT_ROW
    " UNION ALL (" OBSERVER_SIZED_ROWS("1", OBSERVER_MAIN_WHERE, "$4::bigint", "$5::bigint") ")";

constexpr const char* read_pending_sql = OBSERVER_SNAPSHOT_ROW " UNION ALL (" OBSERVER_SIZED_ROWS(
    "2", OBSERVER_PENDING_WHERE, "$6::bigint",
    "$7::bigint") ") UNION ALL (" OBSERVER_SIZED_ROWS("1", OBSERVER_MAIN_WHERE, "$6::bigint",
                                                      "$7::bigint") ")";

// The wake-up mark (sql/0005_wakeup_lock.sql): held exclusively by a sleeping
// listener's session; capture triggers probe it in shared mode.
#define OBSERVER_WAKEUP_CLASS "-152985557"  // hashtext('fraiseql_observer_wakeup')
#define OBSERVER_WAKEUP_KEY OBSERVER_WAKEUP_CLASS ", 0"
constexpr const char* sleep_sql = "SELECT pg_try_advisory_lock(" OBSERVER_WAKEUP_KEY ")";
constexpr const char* wake_sql = "SELECT pg_advisory_unlock(" OBSERVER_WAKEUP_KEY ")";
// Another listener (another listener id on this database) holds the mark:
// writers notify already.
constexpr const char* mark_held_sql =
    "SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
    " WHERE d.datname = current_database() AND l.locktype = 'advisory'"
    " AND l.classid = (" OBSERVER_WAKEUP_CLASS
    ")::int::oid AND l.objid = 0 AND l.objsubid = 2"
    " AND l.mode = 'ExclusiveLock' AND l.granted)";

}  // namespace

struct change_log_reader::impl {
  explicit impl(std::string dsn) : session(std::move(dsn)) {}
  pg_session session;
  std::unique_ptr<wake_receiver> receiver;
  uint64_t seen = 0;
  bool holds_mark = false;      // this session holds the wake-up mark (asleep)
  uint64_t row_bytes_seen = 0;  // mean body size of the rows of the last read

  pqxx::connection_base& conn() {
    if (!session.connected() || !receiver) {
      // The receiver unregisters from its connection when destroyed: it must
      // go before the connection it was attached to.
      receiver.reset();
      session.reset();
      holds_mark = false;  // a session lock ends with its session
      auto& c = session.get();
      // Generic plans: a read is planned once per connection, not once per
      // execution. Both read statements order by the fence index and stop at
      // a LIMIT, so their generic plan is the same index range scan as any
      // custom one (EXPLAIN in docs/performance.md), while planning each read
      // cost the busy listener's backend ~50 µs (the planner probes the index
      // end for the txid range, which a stream of inserts keeps moving) and
      // PostgreSQL alone would keep custom plans here (their estimated cost is
      // lower), i.e. plan every read.
      {
        pqxx::nontransaction tx{c};
        tx.exec0("SET plan_cache_mode = force_generic_plan");
      }
      receiver = std::make_unique<wake_receiver>(c, wake_channel);
      c.prepare("observer_read", read_sql);
      c.prepare("observer_read_pending", read_pending_sql);
      c.prepare("observer_sleep", sleep_sql);
      c.prepare("observer_wake", wake_sql);
      c.prepare("observer_mark_held", mark_held_sql);
    }
    return session.get();
  }
  void drop() {
    receiver.reset();
    session.reset();
    holds_mark = false;
  }
};

change_log_reader::change_log_reader(std::string dsn)
    : impl_(std::make_unique<impl>(std::move(dsn))) {}
change_log_reader::~change_log_reader() {
  impl_->drop();
}

void change_log_reader::reset() {
  impl_->drop();
}

std::vector<event_ptr> change_log_reader::read(read_cursor& cursor, uint32_t limit,
                                               uint64_t& next_seq, read_bounds bounds,
                                               read_stats* stats) {
  const uint64_t room = std::max<uint64_t>(bounds.max_bytes, 1);
  const uint64_t max_event = bounds.max_event_bytes == 0
                                 ? static_cast<uint64_t>(std::numeric_limits<int64_t>::max())
                                 : bounds.max_event_bytes;
  // Rows cut by the byte room were converted to text on the server for
  // nothing: when recent rows were large, ask for about twice the rows the
  // room holds.
  uint32_t rows = limit;
  if (impl_->row_bytes_seen > 0 && room < std::numeric_limits<int64_t>::max()) {
    const uint64_t fit = 2 * (room / impl_->row_bytes_seen) + 2;
    if (fit < rows) rows = static_cast<uint32_t>(fit);
  }
  const auto room_param = static_cast<int64_t>(std::min<uint64_t>(room, INT64_MAX));
  const auto max_param = static_cast<int64_t>(std::min<uint64_t>(max_event, INT64_MAX));
  auto r = guarded(
      impl_->session,
      [&](pqxx::connection_base&) {
        auto& c = impl_->conn();
        pqxx::nontransaction tx{c};
        if (cursor.pending.empty())
          return tx.exec_prepared("observer_read", std::to_string(cursor.pos.txid), cursor.pos.pk,
                                  static_cast<int64_t>(rows), room_param, max_param);
        std::string txids = "{", pks = "{";
        for (const auto& p : cursor.pending) {
          if (txids.size() > 1) {
            txids += ',';
            pks += ',';
          }
          txids += std::to_string(p.txid);
          pks += std::to_string(p.pk);
        }
        txids += '}';
        pks += '}';
        return tx.exec_prepared("observer_read_pending", std::to_string(cursor.pos.txid),
                                cursor.pos.pk, static_cast<int64_t>(rows), txids, pks, room_param,
                                max_param);
      },
      [this] { impl_->drop(); });
  // Bucket the rows by branch; each branch is ordered (sorted again in case a
  // parallel plan interleaved them).
  std::optional<snapshot_info> snap;
  std::vector<pqxx::row> pending_rows, main_rows;
  for (const auto& row : r) {
    auto part = row[0].as<int>();
    if (part == 0)
      snap = snapshot_info::parse(row[13].c_str());
    else
      (part == 2 ? pending_rows : main_rows).push_back(row);
  }
  if (!snap) throw std::runtime_error("change log read returned no snapshot row");
  auto pos_of = [](const pqxx::row& row) {
    return position{parse_u64(row[2].c_str()), row[1].as<int64_t>()};
  };
  auto by_pos = [&](const pqxx::row& a, const pqxx::row& b) { return pos_of(a) < pos_of(b); };
  if (!std::is_sorted(pending_rows.begin(), pending_rows.end(), by_pos))
    std::sort(pending_rows.begin(), pending_rows.end(), by_pos);
  if (!std::is_sorted(main_rows.begin(), main_rows.end(), by_pos))
    std::sort(main_rows.begin(), main_rows.end(), by_pos);
  auto size_of = [](const pqxx::row& row) { return row[14].as<uint64_t>(); };
  // What a row holds against the room: nothing when its body is not read.
  auto charged = [&](const pqxx::row& row) {
    const auto n = size_of(row);
    return n > max_event ? uint64_t{0} : n;
  };
  read_result rr;
  rr.pending_rows.reserve(pending_rows.size());
  rr.main_rows.reserve(main_rows.size());
  for (const auto& row : pending_rows) rr.pending_rows.push_back(pos_of(row));
  for (const auto& row : main_rows) rr.main_rows.push_back(pos_of(row));
  // A pending branch cut by the room (its running total reached it) may have
  // more rows: not exhausted, whatever its row count.
  uint64_t pending_total = 0;
  for (const auto& row : pending_rows) pending_total += charged(row);
  rr.pending_exhausted = pending_rows.size() < rows && pending_total < room;
  // Both branches were bounded separately: take rows in order while they
  // start within the room (at least one).
  const size_t available = std::min<size_t>(rows, pending_rows.size() + main_rows.size());
  size_t take = 0;
  uint64_t taken_bytes = 0;
  const auto row_at = [&](size_t i) -> const pqxx::row& {
    return i < pending_rows.size() ? pending_rows[i] : main_rows[i - pending_rows.size()];
  };
  while (take < available && (take == 0 || taken_bytes < room)) {
    taken_bytes += charged(row_at(take));
    ++take;
  }
  // Cut by bytes: the row limit was not what stopped this read.
  const bool cut =
      take < rows && (taken_bytes >= room || main_rows.size() + pending_rows.size() > take);
  if (take > 0) impl_->row_bytes_seen = std::max<uint64_t>(1, taken_bytes / take);
  // Advance a copy: if building an event fails, the caller retries the same rows.
  read_cursor next = cursor;
  auto cursors = advance_cursor(next, *snap, rr, take);
  std::vector<event_ptr> out;
  out.reserve(take);
  for (size_t i = 0; i < take; ++i) {
    const auto& row = row_at(i);
    auto pos = i < pending_rows.size() ? rr.pending_rows[i] : rr.main_rows[i - pending_rows.size()];
    auto opt = [&](int col) -> std::optional<std::string> {
      if (row[col].is_null()) return std::nullopt;
      return std::string(row[col].c_str());
    };
    const auto bytes = size_of(row);
    event_ptr ev;
    try {
      ev = make_event(next_seq + i, pos, row[3].c_str(), row[5].c_str(), row[4].c_str(),
                      row[6].c_str(), row[7].c_str(), row[8].c_str(), row[9].c_str(), opt(10),
                      opt(11), opt(12), std::make_shared<const read_cursor>(std::move(cursors[i])),
                      bytes, bytes > max_event ? max_event : 0,
                      row[15].is_null() ? std::string() : std::string(row[15].c_str()));
    } catch (const std::exception& e) {
      // jsonb always holds valid JSON; reaching this means corruption we must not hide.
      throw std::runtime_error("change log row pk=" + std::to_string(pos.pk) +
                               " cannot be turned into an event: " + e.what());
    }
    out.push_back(std::move(ev));
  }
  if (stats) {
    stats->rows_asked = rows;
    stats->bytes = taken_bytes;
    stats->cut_by_bytes = cut;
  }
  next_seq += take;
  cursor = std::move(next);
  return out;
}

bool change_log_reader::try_sleep() {
  return guarded(
      impl_->session,
      [&](pqxx::connection_base&) {
        auto& c = impl_->conn();
        pqxx::nontransaction tx{c};
        if (impl_->holds_mark) return true;
        if (tx.exec_prepared1("observer_sleep")[0].as<bool>()) {
          impl_->holds_mark = true;
          return true;
        }
        // Refused: a capture transaction is running (it may commit rows without
        // notifying, so stay awake), or another listener sleeps holding the
        // mark (writers notify it, and us: sleep too).
        return tx.exec_prepared1("observer_mark_held")[0].as<bool>();
      },
      [this] { impl_->drop(); });
}

void change_log_reader::wake() {
  guarded(
      impl_->session,
      [&](pqxx::connection_base&) {
        if (!impl_->holds_mark) return 0;
        auto& c = impl_->conn();
        pqxx::nontransaction tx{c};
        tx.exec_prepared1("observer_wake");
        impl_->holds_mark = false;
        return 0;
      },
      [this] { impl_->drop(); });
}

bool change_log_reader::wait(std::chrono::milliseconds timeout) {
  return guarded(
      impl_->session,
      [&](pqxx::connection_base&) {
        auto& c = impl_->conn();
        auto before = impl_->receiver->count;
        // Drain what already arrived, then block.
        c.get_notifs();
        if (impl_->receiver->count == before) {
          auto us = std::chrono::duration_cast<std::chrono::microseconds>(timeout).count();
          c.await_notification(static_cast<long>(us / 1000000), static_cast<long>(us % 1000000));
        }
        // A connection the server closed reports no error here: surface it, so
        // the caller reconnects (and re-LISTENs) instead of polling a dead socket.
        if (!c.is_open()) throw pqxx::broken_connection("connection closed while waiting");
        return impl_->receiver->count != before;
      },
      [this] { impl_->drop(); });
}

}  // namespace fraiseql
