-- Replay and backfill (docs/history.md, "Replay" and "Backfill").
--
-- Both are requests stored here by the control plane (`observerctl replay`,
-- `observerctl backfill`) and carried out by the node leading the listener id
-- (actors/history/history_writer): each writes change-log rows in chunks, one
-- transaction per chunk that also records the chunk's progress in the
-- request's row, so a node killed mid-way resumes after the last committed
-- chunk and never writes a chunk twice. The rows then travel the normal
-- pipeline (listener, conditions, actions, retries, DLQ, checkpoint).
--
-- A replay copies retained change-log rows with their own id (so the
-- idempotency keys are the original ones) and created_at, and a marker in
-- extra_metadata -> 'fraiseql_replay' = {"id", "listener_id", "observer"} that
-- the envelope carries as "replay". Copies are never replayed again.
-- A backfill writes one 'READ' row per existing row of a captured table, with
-- extra_metadata -> 'fraiseql_backfill' = its id.

-- FraiseQL's change log has it; a log created before it did gets it here.
ALTER TABLE core.tb_entity_change_log ADD COLUMN IF NOT EXISTS extra_metadata jsonb;

CREATE TABLE IF NOT EXISTS observer_replays (
  id bigserial PRIMARY KEY,
  listener_id text NOT NULL,
  -- The request as given (bounds resolved to positions or times, observer):
  -- repeating the same request finds this row instead of replaying twice.
  request_key text NOT NULL,
  observer_name text,
  -- Bounds. A time bound compares created_at; an event bound compares the
  -- position (txid, pk) of that event. Both inclusive.
  from_time timestamptz,
  from_txid xid8,
  from_pk bigint,
  to_time timestamptz,
  to_txid xid8,
  to_pk bigint,
  -- The last row of the log when the request was made: a replay never
  -- chases the rows written after it (its own copies among them).
  cap_txid xid8 NOT NULL,
  cap_pk bigint NOT NULL,
  -- Progress: rows up to this position are copied (NULL: none yet).
  done_txid xid8,
  done_pk bigint,
  events_total bigint NOT NULL,
  events_written bigint NOT NULL DEFAULT 0,
  chunks_done integer NOT NULL DEFAULT 0,
  status text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'done', 'failed')),
  error text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz,
  UNIQUE (listener_id, request_key)
);
CREATE INDEX IF NOT EXISTS observer_replays_running_idx
  ON observer_replays (listener_id) WHERE status = 'running';

CREATE TABLE IF NOT EXISTS observer_backfills (
  id bigserial PRIMARY KEY,
  -- The table (schema-qualified, as regclass prints it), its entity name and
  -- key column as observer_attach() recorded them in the capture trigger.
  table_name text NOT NULL,
  entity text NOT NULL,
  key_column text NOT NULL,
  -- The operator's condition (validated by EXPLAIN in a read-only
  -- transaction when requested), or NULL.
  where_sql text,
  batch_size integer NOT NULL CHECK (batch_size > 0),
  -- Progress: rows with a key up to this one (as text) are emitted.
  last_key text,
  rows_emitted bigint NOT NULL DEFAULT 0,
  chunks_done integer NOT NULL DEFAULT 0,
  -- Chunks rolled back and written again to keep per-entity order (a
  -- concurrent writer of one of the chunk's rows; docs/history.md).
  chunk_retries bigint NOT NULL DEFAULT 0,
  status text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'done', 'failed')),
  error text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz
);
CREATE INDEX IF NOT EXISTS observer_backfills_running_idx
  ON observer_backfills (id) WHERE status = 'running';

