-- Which transport a checkpoint belongs to: 'postgres' (a listener feeding its
-- own executors) or 'pg_to_nats' (a bridge publishing into JetStream), and
-- the spec's troubleshooting view over the checkpoints:
--   SELECT * FROM tb_observer_checkpoint WHERE transport_name = 'pg_to_nats';
--   DELETE FROM tb_observer_checkpoint WHERE transport_name = 'pg_to_nats';
-- The view is a plain projection, so PostgreSQL makes it updatable: the
-- DELETE removes the row from observer_checkpoints (a stopped bridge then
-- re-publishes from the start of the change log when it starts again).
ALTER TABLE observer_checkpoints
  ADD COLUMN IF NOT EXISTS transport_name text NOT NULL DEFAULT 'postgres';
CREATE OR REPLACE VIEW tb_observer_checkpoint AS
  SELECT id, listener_id, transport_name, txid, event_id, pending_txids, events_total,
         last_processed_at, created_at
  FROM observer_checkpoints;
