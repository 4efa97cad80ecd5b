-- The listener reads every committed row, not only those below the oldest
-- running transaction: transactions still running at a read are remembered
-- with the checkpoint ("txid:pk,..." = read up to pk; see runtime/cursor.hpp),
-- so one long-running writer no longer holds back everyone else's events.
ALTER TABLE observer_checkpoints
  ADD COLUMN IF NOT EXISTS pending_txids text NOT NULL DEFAULT '';
