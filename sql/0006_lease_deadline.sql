-- Leases with a deadline. A leader holds its lease only while it renews it:
-- `expires_at` (PostgreSQL's clock, so the nodes' clocks do not matter) moves
-- forward with every renewal, and a standby takes over once it has passed,
-- even while the old leader's connection (and its advisory lock) lives on, as
-- it does for a frozen process until TCP gives up. `lock_held` says whether
-- the leader also holds the advisory lock of the listener: only then does a
-- standby that gets the lock know that the leader's session is gone, and take
-- over at once. Rows of leaders that predate this migration never expire:
-- such a leader does not renew, and only the end of its session frees it.
ALTER TABLE observer_leases ADD COLUMN IF NOT EXISTS expires_at timestamptz NOT NULL DEFAULT 'infinity';
ALTER TABLE observer_leases ADD COLUMN IF NOT EXISTS lock_held boolean NOT NULL DEFAULT true;
