-- Scheduled builds and the workers that run them (builder's and orb's job).

-- How a job is built and within what limits. The epoch is fixed per job so every build and
-- rebuild sees the same SOURCE_DATE_EPOCH.
ALTER TABLE jobs
    ADD COLUMN recipe            jsonb,
    ADD COLUMN timeout_secs      integer NOT NULL DEFAULT 3600 CHECK (timeout_secs BETWEEN 1 AND 604800),
    ADD COLUMN memory_mib        integer NOT NULL DEFAULT 4096 CHECK (memory_mib BETWEEN 16 AND 1048576),
    ADD COLUMN output_mib        integer NOT NULL DEFAULT 1024 CHECK (output_mib BETWEEN 1 AND 1048576),
    ADD COLUMN max_attempts      integer NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 20),
    ADD COLUMN source_date_epoch bigint NOT NULL DEFAULT extract(epoch FROM now())::bigint,
    -- When the scheduler next queues the job (NULL: not scheduled, or not yet considered).
    ADD COLUMN next_run_at       timestamptz;

CREATE TABLE workers (
    id                uuid PRIMARY KEY,
    name              text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9._-]{1,100}$'),
    -- A tenant-private worker runs that tenant's builds only; NULL is the shared pool.
    tenant_id         uuid REFERENCES tenants (id) ON DELETE CASCADE,
    credential_sha256 bytea NOT NULL UNIQUE CHECK (length(credential_sha256) = 32),
    platform          text,
    concurrency       integer,
    version           text,
    last_seen_at      timestamptz,
    revoked_at        timestamptz,
    created_by        uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX workers_tenant ON workers (tenant_id, name);

-- A queued build carries what it will run (copied from the job when queued, so later edits of
-- the job do not change a build already asked for, and a rebuild re-runs exactly the original).
ALTER TABLE builds
    ADD COLUMN attempt           integer NOT NULL DEFAULT 0,
    ADD COLUMN worker_id         uuid REFERENCES workers (id) ON DELETE SET NULL,
    ADD COLUMN lease_expires_at  timestamptz,
    ADD COLUMN not_before        timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN recipe            jsonb,
    ADD COLUMN limits            jsonb,
    ADD COLUMN source_date_epoch bigint,
    ADD COLUMN rebuild_of        uuid REFERENCES builds (id) ON DELETE CASCADE,
    ADD COLUMN requested_by      uuid REFERENCES users (id) ON DELETE SET NULL;

-- A job is queued at most once per platform (rebuilds are separate requests).
CREATE UNIQUE INDEX builds_one_queued ON builds (job_id, platform)
    WHERE status = 'queued' AND rebuild_of IS NULL;
-- The queues, one per platform, oldest first.
CREATE INDEX builds_queue ON builds (platform, not_before, queued_at) WHERE status = 'queued';
-- Leases the scheduler watches.
CREATE INDEX builds_leases ON builds (lease_expires_at) WHERE status = 'running';
CREATE INDEX builds_rebuild_of ON builds (rebuild_of) WHERE rebuild_of IS NOT NULL;

CREATE TABLE rebuild_verdicts (
    rebuild_id   uuid PRIMARY KEY REFERENCES builds (id) ON DELETE CASCADE,
    build_id     uuid NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    reproducible boolean NOT NULL,
    differences  jsonb NOT NULL,
    checked_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rebuild_verdicts_build ON rebuild_verdicts (build_id, checked_at);
