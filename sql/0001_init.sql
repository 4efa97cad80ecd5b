-- FraiseQL observer schema, version 1. Idempotent: every statement can run on a
-- fresh database or on an existing FraiseQL database whose change log already exists.

CREATE SCHEMA IF NOT EXISTS core;

-- The outbox. Column names follow FraiseQL's core.tb_entity_change_log so an
-- existing FraiseQL database works unchanged; the engine adds its ordering key
-- and the visibility fence column when they are missing.
CREATE TABLE IF NOT EXISTS core.tb_entity_change_log (
  pk_entity_change_log bigserial PRIMARY KEY,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  tenant_id text,
  user_id text,
  trace_id text,
  object_type text NOT NULL,
  object_id text,
  modification_type text NOT NULL,
  object_data jsonb,
  object_data_before jsonb,
  extra_metadata jsonb,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
ALTER TABLE core.tb_entity_change_log ADD COLUMN IF NOT EXISTS pk_entity_change_log bigserial;
ALTER TABLE core.tb_entity_change_log ADD COLUMN IF NOT EXISTS object_data_before jsonb;
ALTER TABLE core.tb_entity_change_log ADD COLUMN IF NOT EXISTS tenant_id text;
ALTER TABLE core.tb_entity_change_log ADD COLUMN IF NOT EXISTS user_id text;
ALTER TABLE core.tb_entity_change_log ADD COLUMN IF NOT EXISTS trace_id text;
-- Visibility fence: the writer's top-level transaction id. The listener reads
-- only rows whose txid is below the xmin of its snapshot, i.e. rows of
-- transactions that have all ended, so no row can ever appear behind its cursor
-- (a plain id cursor loses rows of transactions that commit out of id order).
ALTER TABLE core.tb_entity_change_log
  ADD COLUMN IF NOT EXISTS txid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX IF NOT EXISTS tb_entity_change_log_fence_idx
  ON core.tb_entity_change_log (txid, pk_entity_change_log);

-- Wake-up mark (one row). The listener sets asleep = true only when idle; writers'
-- capture triggers NOTIFY only while it is set, so busy periods cost writers no
-- NOTIFY (a notifying commit takes a database-wide lock and serializes commits).
-- Unlogged: after a crash it is empty, which only means "no NOTIFY" until the
-- listener writes it again; the listener also polls, so nothing is lost.
CREATE UNLOGGED TABLE IF NOT EXISTS observer_listener_wakeup (
  id int PRIMARY KEY DEFAULT 1 CHECK (id = 1),
  asleep boolean NOT NULL DEFAULT false,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Progress per source: every event at or before (txid, event_id) in fence order
-- is finished (delivered or in the DLQ).
CREATE TABLE IF NOT EXISTS observer_checkpoints (
  id bigserial PRIMARY KEY,
  listener_id varchar NOT NULL UNIQUE,
  event_id bigint NOT NULL,
  txid xid8 NOT NULL DEFAULT '0',
  events_total bigint NOT NULL DEFAULT 0,
  last_processed_at timestamp NOT NULL,
  created_at timestamp DEFAULT now()
);

-- Dead-letter queue: one row per (event, observer, action) that exhausted its
-- attempts. The idempotency key makes a redelivered failure update its row
-- instead of adding a second one.
CREATE TABLE IF NOT EXISTS observer_dlq (
  id bigserial PRIMARY KEY,
  event_id uuid NOT NULL,
  event jsonb NOT NULL,
  observer_name text NOT NULL,
  action_index int NOT NULL,
  action_type text NOT NULL,
  idempotency_key text NOT NULL UNIQUE,
  last_error text NOT NULL,
  attempts int NOT NULL,
  first_attempt_at timestamptz NOT NULL,
  last_attempt_at timestamptz NOT NULL,
  status text NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'retrying', 'resolved', 'removed')),
  retry_count int NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS observer_dlq_observer_idx ON observer_dlq (observer_name, created_at);
CREATE INDEX IF NOT EXISTS observer_dlq_status_idx ON observer_dlq (status, created_at);

-- Generic capture trigger, statement level with transition tables.
-- Arguments: entity name, id column (default 'id'), capture pre-image (default false).
-- Session settings fraiseql.tenant_id / fraiseql.user_id / fraiseql.trace_id, when
-- set by the application, are recorded with each row.
CREATE OR REPLACE FUNCTION observer_capture() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
  v_entity text := TG_ARGV[0];
  v_idcol text := coalesce(TG_ARGV[1], 'id');
  v_before boolean := coalesce(TG_ARGV[2], 'false')::boolean;
  v_tenant text := nullif(current_setting('fraiseql.tenant_id', true), '');
  v_user text := nullif(current_setting('fraiseql.user_id', true), '');
  v_trace text := nullif(current_setting('fraiseql.trace_id', true), '');
  v_rows bigint := 0;
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO core.tb_entity_change_log
      (object_type, modification_type, object_id, object_data, tenant_id, user_id, trace_id)
    SELECT v_entity, 'INSERT', s.j ->> v_idcol, s.j, v_tenant, v_user, v_trace
    FROM (SELECT to_jsonb(n) AS j FROM observer_new n) s;
  ELSIF TG_OP = 'UPDATE' THEN
    IF v_before THEN
      INSERT INTO core.tb_entity_change_log
        (object_type, modification_type, object_id, object_data, object_data_before,
         tenant_id, user_id, trace_id)
      SELECT v_entity, 'UPDATE', n.j ->> v_idcol, n.j, o.j, v_tenant, v_user, v_trace
      FROM (SELECT to_jsonb(x) AS j FROM observer_new x) n
      LEFT JOIN (SELECT to_jsonb(y) AS j FROM observer_old y) o
        ON (o.j -> v_idcol) = (n.j -> v_idcol);
    ELSE
      INSERT INTO core.tb_entity_change_log
        (object_type, modification_type, object_id, object_data, tenant_id, user_id, trace_id)
      SELECT v_entity, 'UPDATE', s.j ->> v_idcol, s.j, v_tenant, v_user, v_trace
      FROM (SELECT to_jsonb(n) AS j FROM observer_new n) s;
    END IF;
  ELSE
    INSERT INTO core.tb_entity_change_log
      (object_type, modification_type, object_id, object_data, tenant_id, user_id, trace_id)
    SELECT v_entity, 'DELETE', s.j ->> v_idcol, s.j, v_tenant, v_user, v_trace
    FROM (SELECT to_jsonb(o) AS j FROM observer_old o) s;
  END IF;
  GET DIAGNOSTICS v_rows = ROW_COUNT;
  IF v_rows > 0 AND EXISTS (SELECT 1 FROM observer_listener_wakeup WHERE asleep) THEN
    PERFORM pg_notify('fraiseql_observer', '');
  END IF;
  RETURN NULL;
END
$fn$;

-- Attaches the capture trigger to a table (replacing an earlier attachment).
CREATE OR REPLACE FUNCTION observer_attach(p_table regclass, p_entity text,
                                           p_id_column text DEFAULT 'id',
                                           p_capture_before boolean DEFAULT false)
RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
  IF p_entity IS NULL OR p_entity = '' THEN
    RAISE EXCEPTION 'observer_attach: entity name must not be empty';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_attribute
                 WHERE attrelid = p_table AND attname = p_id_column AND NOT attisdropped) THEN
    RAISE EXCEPTION 'observer_attach: table % has no column %', p_table, p_id_column;
  END IF;
  PERFORM observer_detach(p_table);
  EXECUTE format('CREATE TRIGGER observer_capture_ins AFTER INSERT ON %s '
                 'REFERENCING NEW TABLE AS observer_new FOR EACH STATEMENT '
                 'EXECUTE FUNCTION observer_capture(%L, %L, %L)',
                 p_table, p_entity, p_id_column, p_capture_before);
  EXECUTE format('CREATE TRIGGER observer_capture_upd AFTER UPDATE ON %s '
                 'REFERENCING OLD TABLE AS observer_old NEW TABLE AS observer_new '
                 'FOR EACH STATEMENT EXECUTE FUNCTION observer_capture(%L, %L, %L)',
                 p_table, p_entity, p_id_column, p_capture_before);
  EXECUTE format('CREATE TRIGGER observer_capture_del AFTER DELETE ON %s '
                 'REFERENCING OLD TABLE AS observer_old FOR EACH STATEMENT '
                 'EXECUTE FUNCTION observer_capture(%L, %L, %L)',
                 p_table, p_entity, p_id_column, p_capture_before);
END
$fn$;

CREATE OR REPLACE FUNCTION observer_detach(p_table regclass) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
  v_name name;
BEGIN
  FOR v_name IN SELECT tgname FROM pg_trigger
                WHERE tgrelid = p_table
                  AND tgname IN ('observer_capture_ins', 'observer_capture_upd',
                                 'observer_capture_del') LOOP
    EXECUTE format('DROP TRIGGER %I ON %s', v_name, p_table);
  END LOOP;
END
$fn$;

-- Emits a CUSTOM event from application code, in the caller's transaction.
CREATE OR REPLACE FUNCTION observer_emit(p_entity text, p_entity_id text, p_data jsonb)
RETURNS uuid LANGUAGE plpgsql AS $fn$
DECLARE
  v_id uuid;
BEGIN
  INSERT INTO core.tb_entity_change_log
    (object_type, modification_type, object_id, object_data, tenant_id, user_id, trace_id)
  VALUES (p_entity, 'CUSTOM', p_entity_id, p_data,
          nullif(current_setting('fraiseql.tenant_id', true), ''),
          nullif(current_setting('fraiseql.user_id', true), ''),
          nullif(current_setting('fraiseql.trace_id', true), ''))
  RETURNING id INTO v_id;
  IF EXISTS (SELECT 1 FROM observer_listener_wakeup WHERE asleep) THEN
    PERFORM pg_notify('fraiseql_observer', '');
  END IF;
  RETURN v_id;
END
$fn$;
