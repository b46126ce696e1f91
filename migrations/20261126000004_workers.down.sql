DROP TABLE rebuild_verdicts;
DROP INDEX builds_rebuild_of;
DROP INDEX builds_leases;
DROP INDEX builds_queue;
DROP INDEX builds_one_queued;
-- Builds that never finished have no place in the older schema.
DELETE FROM builds WHERE status IN ('queued', 'running');
ALTER TABLE builds
    DROP COLUMN requested_by,
    DROP COLUMN rebuild_of,
    DROP COLUMN source_date_epoch,
    DROP COLUMN limits,
    DROP COLUMN recipe,
    DROP COLUMN not_before,
    DROP COLUMN lease_expires_at,
    DROP COLUMN worker_id,
    DROP COLUMN attempt;
DROP TABLE workers;
ALTER TABLE jobs
    DROP COLUMN next_run_at,
    DROP COLUMN source_date_epoch,
    DROP COLUMN max_attempts,
    DROP COLUMN output_mib,
    DROP COLUMN memory_mib,
    DROP COLUMN timeout_secs,
    DROP COLUMN recipe;
