-- Audit trail (docs/history.md): every routed event and every finished action
-- attempt, written off the hot path in batches by the audit actor
-- (actors/history/audit.cpp), searched by `observerctl search`.
--
-- Both tables are partitioned by day (UTC) on the *event's* timestamp, so an
-- event and all its attempts (even retries on a later day) live in the
-- partitions of one day, and retention drops whole partitions (never a
-- row-by-row DELETE). The node creates partitions ahead
-- (observer_audit_ensure_partitions) and drops expired ones
-- (observer_audit_drop_expired), which keeps a partition that still holds an
-- unfinished event. observer_dlq is a table of its own: retention never touches it.
CREATE TABLE IF NOT EXISTS observer_audit_events (
  event_id uuid NOT NULL,
  -- The event's timestamp (the change log's created_at): the partition key.
  ts timestamptz NOT NULL,
  listener_id varchar NOT NULL,
  -- Fence position of the change-log row: compared with the listener's
  -- checkpoint to tell finished events (retention).
  txid xid8,
  pk bigint,
  -- INSERT | UPDATE | DELETE | CUSTOM, and the same as the spec's event kinds
  -- created | updated | deleted | custom.
  event_type text NOT NULL,
  event_kind text NOT NULL,
  entity_type text NOT NULL,
  entity_id text NOT NULL,
  -- Observers that matched, and how many actions they run in all (0: none
  -- matched; the event was finished at once).
  observers text[] NOT NULL DEFAULT '{}',
  actions int NOT NULL DEFAULT 0,
  -- The envelope's data (after-image; before-image for DELETE): field queries
  -- such as customer_org:acme-corp.
  data jsonb,
  tenant_id text,
  user_id text,
  indexed_at timestamptz NOT NULL DEFAULT now(),
  tsv tsvector GENERATED ALWAYS AS (
    to_tsvector('simple', entity_type || ' ' || entity_id || ' ' || event_type || ' ' ||
                          event_kind)
    || jsonb_to_tsvector('simple', coalesce(data, '{}'::jsonb), '["string", "numeric"]')
  ) STORED,
  UNIQUE (event_id, ts)
) PARTITION BY RANGE (ts);

CREATE INDEX IF NOT EXISTS observer_audit_events_ts_idx ON observer_audit_events (ts DESC);
CREATE INDEX IF NOT EXISTS observer_audit_events_entity_idx
  ON observer_audit_events (entity_type, event_kind, ts DESC);
CREATE INDEX IF NOT EXISTS observer_audit_events_entity_id_idx
  ON observer_audit_events (entity_id);
CREATE INDEX IF NOT EXISTS observer_audit_events_tsv_idx ON observer_audit_events USING gin (tsv);
CREATE INDEX IF NOT EXISTS observer_audit_events_data_idx
  ON observer_audit_events USING gin (data jsonb_path_ops);

-- Every index costs the writer (measured in docs/performance.md): event kind
-- or action type alone select too little to deserve one; the time index
-- serves them with a filter.

-- One row per finished attempt of one action (success, failure retried,
-- failure for good, or handed to the job queue).
CREATE TABLE IF NOT EXISTS observer_audit_attempts (
  event_id uuid NOT NULL,
  -- The event's timestamp: the partition key (an event's attempts share its day).
  event_ts timestamptz NOT NULL,
  -- When the attempt ended.
  ts timestamptz NOT NULL,
  -- The event's entity and kind, copied: searches for attempts of an entity
  -- type or kind (the spec's "failed webhook actions for product updates")
  -- filter and stop early on this table's indexes, without probing the
  -- events of every partition.
  entity_type text,
  entity_id text,
  event_kind text,
  listener_id varchar NOT NULL,
  observer_name text NOT NULL,
  action_index int NOT NULL,
  action_type text NOT NULL,
  attempt int NOT NULL,
  -- succeeded | retrying (failed, tried again) | failed (for good: in the DLQ)
  -- | enqueued (async: handed to the job queue)
  status text NOT NULL,
  http_status int,
  error text,
  latency_ms double precision,
  idempotency_key text NOT NULL
) PARTITION BY RANGE (event_ts);

CREATE INDEX IF NOT EXISTS observer_audit_attempts_event_idx
  ON observer_audit_attempts (event_id);
CREATE INDEX IF NOT EXISTS observer_audit_attempts_status_idx
  ON observer_audit_attempts (status, action_type, ts DESC);
CREATE INDEX IF NOT EXISTS observer_audit_attempts_ts_idx ON observer_audit_attempts (ts DESC);

-- Creates the partitions of both tables for every day in [from_day, to_day]
-- that has none yet. Returns how many it created. Partitions are named
-- observer_audit_events_YYYYMMDD and observer_audit_attempts_YYYYMMDD.
CREATE OR REPLACE FUNCTION observer_audit_ensure_partitions(from_day date, to_day date)
RETURNS int LANGUAGE plpgsql AS $fn$
DECLARE
  d date := from_day;
  n int := 0;
  suffix text;
BEGIN
  IF to_day - from_day > 400 THEN
    RAISE EXCEPTION 'observer_audit_ensure_partitions: % days asked, at most 400', to_day - from_day;
  END IF;
  -- Serializes creators (nodes of several listener ids on one database).
  PERFORM pg_advisory_xact_lock(hashtext('observer_audit_partitions'));
  WHILE d <= to_day LOOP
    suffix := to_char(d, 'YYYYMMDD');
    IF to_regclass('observer_audit_events_' || suffix) IS NULL THEN
      EXECUTE format('CREATE TABLE %I PARTITION OF observer_audit_events'
                     ' FOR VALUES FROM (%L) TO (%L)',
                     'observer_audit_events_' || suffix,
                     (d::timestamp AT TIME ZONE 'UTC'), ((d + 1)::timestamp AT TIME ZONE 'UTC'));
      n := n + 1;
    END IF;
    IF to_regclass('observer_audit_attempts_' || suffix) IS NULL THEN
      EXECUTE format('CREATE TABLE %I PARTITION OF observer_audit_attempts'
                     ' FOR VALUES FROM (%L) TO (%L)',
                     'observer_audit_attempts_' || suffix,
                     (d::timestamp AT TIME ZONE 'UTC'), ((d + 1)::timestamp AT TIME ZONE 'UTC'));
      n := n + 1;
    END IF;
    d := d + 1;
  END LOOP;
  RETURN n;
END
$fn$;

-- Events of one day's partition whose deliveries are not finished: an event
-- with more actions than actions ended for good (succeeded, failed into the
-- DLQ, or enqueued) whose listener's checkpoint has not passed it, or an event
-- with a job still in observer_jobs.
CREATE OR REPLACE FUNCTION observer_audit_unfinished(day date)
RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
  suffix text := to_char(day, 'YYYYMMDD');
  n bigint;
BEGIN
  IF to_regclass('observer_audit_events_' || suffix) IS NULL THEN
    RETURN 0;
  END IF;
  EXECUTE format($q$
    SELECT count(*) FROM %I e
    WHERE (e.actions > (SELECT count(DISTINCT (a.observer_name, a.action_index))
                          FROM %I a
                         WHERE a.event_id = e.event_id
                           AND a.status IN ('succeeded', 'failed', 'enqueued'))
           AND NOT EXISTS (
             SELECT 1 FROM observer_checkpoints c
              WHERE c.listener_id = e.listener_id AND c.transport_name = 'postgres'
                AND e.txid IS NOT NULL
                AND (c.txid > e.txid OR (c.txid = e.txid AND c.event_id >= e.pk))
                AND position(',' || e.txid::text || ':' IN
                             ',' || coalesce(c.pending_txids, '')) = 0))
       OR EXISTS (SELECT 1 FROM observer_jobs j WHERE j.event_id = e.event_id)
  $q$, 'observer_audit_events_' || suffix, 'observer_audit_attempts_' || suffix) INTO n;
  RETURN n;
END
$fn$;

-- Retention: drops the partitions (events and attempts) of every day that
-- ended more than keep_days days ago, except those still holding an
-- unfinished event. One row per expired day: whether it was dropped, and how
-- many unfinished events kept it.
CREATE OR REPLACE FUNCTION observer_audit_drop_expired(keep_days int)
RETURNS TABLE (day date, dropped boolean, unfinished bigint)
LANGUAGE plpgsql AS $fn$
DECLARE
  r record;
  cutoff date := (now() AT TIME ZONE 'UTC')::date - keep_days;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('observer_audit_partitions'));
  -- A DROP waits for searches and writes on the table; never for long.
  SET LOCAL lock_timeout = '5s';
  FOR r IN
    SELECT DISTINCT to_date(right(c.relname, 8), 'YYYYMMDD') AS d
      FROM pg_inherits i
      JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent IN ('observer_audit_events'::regclass, 'observer_audit_attempts'::regclass)
       AND c.relname ~ '_[0-9]{8}$'
     ORDER BY 1
  LOOP
    -- A day is expired once all of it is older than keep_days.
    CONTINUE WHEN r.d >= cutoff;
    day := r.d;
    unfinished := observer_audit_unfinished(r.d);
    dropped := unfinished = 0;
    IF dropped THEN
      EXECUTE format('DROP TABLE IF EXISTS %I, %I',
                     'observer_audit_events_' || to_char(r.d, 'YYYYMMDD'),
                     'observer_audit_attempts_' || to_char(r.d, 'YYYYMMDD'));
    END IF;
    RETURN NEXT;
  END LOOP;
END
$fn$;
