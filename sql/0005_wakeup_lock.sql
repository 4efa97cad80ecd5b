-- Wake-up mark as an advisory lock instead of a table row.
--
-- The listener is "asleep" (waiting for a NOTIFY) exactly while its session
-- holds the advisory lock (hashtext('fraiseql_observer_wakeup'), 0) =
-- (-152985557, 0) exclusively. A capture trigger asks for the same lock in
-- shared mode for its transaction: granted means nobody sleeps, so no NOTIFY
-- (a notifying commit takes a database-wide lock through its WAL flush and
-- serializes writers); refused means a listener sleeps, so NOTIFY.
--
-- Compared with 0001's one-row table:
-- * A listener that stops or dies while asleep leaves nothing behind: its
--   session lock goes with its connection, so writers stop notifying. The row
--   stayed "asleep" after a stop or kill -9 and every commit paid for NOTIFY
--   until a node came back.
-- * The check is a lock-table probe, not a query (3-4 points less capture
--   overhead at 8 writers, docs/performance.md).
-- * No lost wake-up: a writer that was granted the shared lock holds it until
--   its transaction ends, so the listener cannot fall asleep between that
--   writer's check and its commit; it polls on and reads the rows instead.
-- observer_listener_wakeup is no longer read or written; it stays so that a
-- node of an earlier version running during an upgrade does not fail (it only
-- waits up to its poll interval for rows instead of being woken).

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
  IF v_rows > 0 AND NOT pg_try_advisory_xact_lock_shared(-152985557, 0) THEN
    PERFORM pg_notify('fraiseql_observer', '');
  END IF;
  RETURN NULL;
END
$fn$;

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
  IF NOT pg_try_advisory_xact_lock_shared(-152985557, 0) THEN
    PERFORM pg_notify('fraiseql_observer', '');
  END IF;
  RETURN v_id;
END
$fn$;
