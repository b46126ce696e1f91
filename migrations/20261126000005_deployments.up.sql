-- KVM agents, deployments of unikernels, and tenant quotas (albatross' job).

CREATE TABLE agents (
    id                uuid PRIMARY KEY,
    name              text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9._-]{1,100}$'),
    credential_sha256 bytea NOT NULL UNIQUE CHECK (length(credential_sha256) = 32),
    inventory         jsonb,
    last_seen_at      timestamptz,
    revoked_at        timestamptz,
    -- Bumped whenever the agent's assignments change; its long-poll answers on a change.
    generation        bigint NOT NULL DEFAULT 1,
    created_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE agent_enrollments (
    token_sha256 bytea PRIMARY KEY CHECK (length(token_sha256) = 32),
    name         text NOT NULL CHECK (name ~ '^[A-Za-z0-9._-]{1,100}$'),
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz,
    created_by   uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- As albatross' policies; a tenant without a row is bounded by its ancestors' quotas only.
CREATE TABLE quotas (
    tenant_id  uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    unikernels integer NOT NULL CHECK (unikernels >= 0),
    memory_mib bigint NOT NULL CHECK (memory_mib >= 0),
    block_mib  bigint NOT NULL DEFAULT 0 CHECK (block_mib >= 0),
    cpus       integer[] NOT NULL DEFAULT '{}',
    bridges    text[] NOT NULL DEFAULT '{}'
);

CREATE TYPE deployment_state AS ENUM
    ('pending', 'running', 'restarting', 'exited', 'failed', 'stopped', 'unknown');

CREATE TABLE deployments (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name             text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    image_sha256     bytea NOT NULL CHECK (length(image_sha256) = 32),
    build_id         uuid REFERENCES builds (id) ON DELETE SET NULL,
    memory_mib       integer NOT NULL CHECK (memory_mib BETWEEN 1 AND 1048576),
    cpus             integer[] NOT NULL DEFAULT '{}',
    args             text[] NOT NULL DEFAULT '{}',
    nets             jsonb NOT NULL DEFAULT '[]',
    restart          jsonb NOT NULL,
    startup_priority integer NOT NULL DEFAULT 50,
    agent_id         uuid REFERENCES agents (id) ON DELETE SET NULL,
    state            deployment_state NOT NULL DEFAULT 'pending',
    exit_code        integer,
    message          text,
    restarts         integer NOT NULL DEFAULT 0,
    -- Bumped by a restart request: the agent starts the unikernel again.
    revision         bigint NOT NULL DEFAULT 1,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);
CREATE INDEX deployments_agent ON deployments (agent_id);

CREATE TABLE deployment_events (
    id            bigserial PRIMARY KEY,
    deployment_id uuid NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    at            timestamptz NOT NULL DEFAULT now(),
    state         deployment_state NOT NULL,
    exit_code     integer,
    message       text
);
CREATE INDEX deployment_events_by_deployment ON deployment_events (deployment_id, id);

-- The last 1,024 console lines of each deployment (albatross' ring), kept after it stops.
CREATE TABLE deployment_console (
    deployment_id uuid NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    number        bigint NOT NULL,
    at            timestamptz NOT NULL,
    text          text NOT NULL,
    PRIMARY KEY (deployment_id, number)
);
