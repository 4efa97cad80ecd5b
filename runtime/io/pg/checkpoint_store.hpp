#pragma once

// observer_checkpoints (the saved watermark of a listener id).

#include "messages/checkpoint.hpp"
#include "runtime/core/checkpoint_sink.hpp"
#include "runtime/io/pg/session.hpp"

#include <cstdint>
#include <optional>
#include <string>

namespace fraiseql {

/// observer_checkpoints for one listener id. With an epoch set, every save is
/// conditional on that epoch still being current in observer_leases.
class checkpoint_store final : public checkpoint_sink {
 public:
  /// `transport_name`: 'postgres' (a listener) or 'pg_to_nats' (a bridge),
  /// written with every save (tb_observer_checkpoint shows it).
  checkpoint_store(std::string dsn, std::string listener_id,
                   std::string transport_name = "postgres");
  ~checkpoint_store() override;
  std::optional<checkpoint_record> load();
  /// Throws fenced_out when the epoch is no longer current.
  void save(const checkpoint_record& rec) override;
  void set_epoch(int64_t epoch) { epoch_ = epoch; }
  void reset();

 private:
  std::string listener_id_;
  std::string transport_name_;
  std::optional<int64_t> epoch_;
  pg_session session_;
};

}  // namespace fraiseql
