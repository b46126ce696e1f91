-- Jobs, builds, content-addressed artifacts, recorded inputs as rows, staged uploads.

CREATE TYPE job_visibility AS ENUM ('private', 'public');
CREATE TYPE job_schedule AS ENUM ('hourly', 'daily', 'weekly', 'never');
CREATE TYPE build_status AS ENUM ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'timed_out');
CREATE TYPE build_result_kind AS ENUM ('exited', 'signalled', 'stopped', 'message');

-- Each tenant's path from the root, `parent:child`, as albatross names things.
CREATE RECURSIVE VIEW tenant_paths (id, path) AS
    SELECT id, name FROM tenants WHERE parent_id IS NULL
    UNION ALL
    SELECT t.id, p.path || ':' || t.name FROM tenants t JOIN tenant_paths p ON t.parent_id = p.id;

CREATE TABLE jobs (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name             text NOT NULL CHECK (name ~ '^[A-Za-z0-9._-]{1,100}$'),
    platforms        text[] NOT NULL DEFAULT '{}',
    schedule         job_schedule NOT NULL DEFAULT 'never',
    visibility       job_visibility NOT NULL DEFAULT 'private',
    synopsis         text,
    readme           text,
    keep_last        integer CHECK (keep_last > 0),
    keep_days        integer CHECK (keep_days > 0),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);
CREATE INDEX jobs_name ON jobs (name);

-- One row per distinct content in the object store, keyed by its SHA-256.
CREATE TABLE blobs (
    sha256      bytea PRIMARY KEY CHECK (length(sha256) = 32),
    size        bigint NOT NULL CHECK (size >= 0),
    stored      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE builds (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    job_id          uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    platform        text NOT NULL CHECK (length(platform) BETWEEN 1 AND 100),
    status          build_status NOT NULL,
    result_kind     build_result_kind,
    result_code     integer,
    result_message  text,
    queued_at       timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    worker          text,
    script          text,
    input_id        bytea CHECK (input_id IS NULL OR length(input_id) = 32),
    main_binary     text,
    -- Retention dropped this build's artifact contents; metadata and hashes stay.
    expired         boolean NOT NULL DEFAULT false,
    CHECK ((result_kind IS NULL) = (status IN ('queued', 'running')) OR status = 'cancelled')
);
CREATE INDEX builds_job_queued ON builds (job_id, queued_at DESC, id DESC);
CREATE INDEX builds_tenant_queued ON builds (tenant_id, queued_at DESC, id DESC);
CREATE INDEX builds_latest ON builds (job_id, platform, finished_at DESC) WHERE status = 'succeeded';
CREATE INDEX builds_input_id ON builds (input_id) WHERE input_id IS NOT NULL;

CREATE TABLE build_artifacts (
    build_id  uuid NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    path      text NOT NULL,
    sha256    bytea NOT NULL REFERENCES blobs (sha256),
    size      bigint NOT NULL,
    PRIMARY KEY (build_id, path)
);
CREATE INDEX build_artifacts_sha256 ON build_artifacts (sha256);

CREATE TABLE build_console (
    build_id  uuid NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    number    bigint NOT NULL,
    at_ms     bigint NOT NULL,
    text      text NOT NULL,
    PRIMARY KEY (build_id, number)
);

CREATE TABLE build_environment (
    build_id  uuid NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    key       text NOT NULL,
    value     text NOT NULL,
    PRIMARY KEY (build_id, key)
);

-- Packages a build contained (system packages, opam, Cargo): the fleet query reads these.
CREATE TABLE build_packages (
    build_id   uuid NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    ecosystem  text NOT NULL,
    name       text NOT NULL,
    version    text NOT NULL,
    PRIMARY KEY (build_id, ecosystem, name, version)
);
CREATE INDEX build_packages_lookup ON build_packages (ecosystem, name, version);

-- A build being uploaded: nothing of it is visible until it is finalized.
CREATE TABLE uploads (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    job_id       uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    build_id     uuid NOT NULL UNIQUE,
    state        text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'finalized', 'aborted')),
    metadata     jsonb NOT NULL,
    created_by   uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX uploads_expiry ON uploads (expires_at) WHERE state = 'open';

CREATE TABLE upload_artifacts (
    upload_id  uuid NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    path       text NOT NULL,
    sha256     bytea NOT NULL REFERENCES blobs (sha256),
    size       bigint NOT NULL,
    PRIMARY KEY (upload_id, path)
);

CREATE TABLE upload_console (
    upload_id  uuid NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    number     bigint NOT NULL,
    at_ms      bigint NOT NULL,
    text       text NOT NULL,
    PRIMARY KEY (upload_id, number)
);

-- Computed views of a build's inputs and outputs, shared by every build with the same input
-- (keyed by the SHA-256 of the file they are computed from).
CREATE TABLE visualizations (
    kind          text NOT NULL CHECK (kind IN ('dependencies', 'treemap')),
    input_sha256  bytea NOT NULL,
    version       integer NOT NULL,
    data          jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, input_sha256, version)
);

-- The background work queue every API replica takes from (FOR UPDATE SKIP LOCKED).
CREATE TABLE background_tasks (
    id            bigserial PRIMARY KEY,
    kind          text NOT NULL,
    payload       jsonb NOT NULL,
    run_after     timestamptz NOT NULL DEFAULT now(),
    attempts      integer NOT NULL DEFAULT 0,
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX background_tasks_due ON background_tasks (run_after);
