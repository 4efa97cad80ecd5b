-- Leadership per source (listener id). The leader holds a session advisory lock
-- (released by PostgreSQL when its connection ends, so a crashed leader frees
-- it) and bumps `epoch` when it takes over. Every checkpoint write carries the
-- writer's epoch and only succeeds while it is still the current one: a former
-- leader that lost its lock can never move the checkpoint again (fencing).
CREATE TABLE IF NOT EXISTS observer_leases (
  listener_id varchar PRIMARY KEY,
  epoch bigint NOT NULL DEFAULT 0,
  holder text NOT NULL,
  acquired_at timestamptz NOT NULL DEFAULT now()
);
