-- Persistent job queue for asynchronous actions (`async = true`). The action
-- pool inserts one row per (event, observer, action) and counts the action as
-- done for the event (and the checkpoint) once the INSERT has committed; the
-- job runner then claims due rows with a lease, runs the action, and deletes
-- the row on success or moves it to observer_dlq after its last attempt.
--
-- Leases, not row locks: a claim is a short UPDATE that sets locked_by and
-- locked_until and commits at once. No transaction stays open while an action
-- runs (an open transaction holding an xid would stay "running" in the
-- listener's snapshots and hold back vacuum). A node that dies mid-action leaves a
-- lease that expires; the job is then claimable again.
CREATE TABLE IF NOT EXISTS observer_jobs (
  id bigserial PRIMARY KEY,
  -- The listener id whose node runs the job (each leader runs its own queue).
  listener_id varchar NOT NULL,
  -- "<event id>:<observer>:<action index>": a redelivered event enqueues
  -- nothing new (INSERT ... ON CONFLICT DO NOTHING).
  idempotency_key text NOT NULL,
  event_id uuid NOT NULL,
  observer_name text NOT NULL,
  action_index int NOT NULL,
  action_type text NOT NULL,
  -- The event envelope the action runs with.
  event jsonb NOT NULL,
  -- Attempts started (counted when claimed).
  attempts int NOT NULL DEFAULT 0,
  max_attempts int NOT NULL CHECK (max_attempts >= 1),
  -- Not claimable before this (backoff between attempts).
  run_at timestamptz NOT NULL DEFAULT now(),
  -- The runner holding the lease, and until when; NULL when not claimed.
  locked_by text,
  locked_until timestamptz,
  last_error text,
  first_attempt_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (listener_id, idempotency_key)
);
CREATE INDEX IF NOT EXISTS observer_jobs_due_idx ON observer_jobs (listener_id, run_at, id);
CREATE INDEX IF NOT EXISTS observer_jobs_locked_by_idx ON observer_jobs (locked_by)
  WHERE locked_by IS NOT NULL;
