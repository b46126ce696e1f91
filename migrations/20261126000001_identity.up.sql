-- Identity and tenancy: tenants (a tree), users, memberships, sessions, API tokens, audit log,
-- login attempts (for rate limiting across API replicas).

CREATE TYPE member_role AS ENUM ('viewer', 'operator', 'owner');

CREATE TABLE tenants (
    id          uuid PRIMARY KEY,
    parent_id   uuid REFERENCES tenants (id) ON DELETE RESTRICT,
    name        text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- Names are unique among siblings; top-level names among themselves.
CREATE UNIQUE INDEX tenants_sibling_name ON tenants (COALESCE(parent_id, '00000000-0000-0000-0000-000000000000'::uuid), name);
CREATE INDEX tenants_parent ON tenants (parent_id);

CREATE TABLE users (
    id             uuid PRIMARY KEY,
    username       text NOT NULL UNIQUE CHECK (username ~ '^[A-Za-z0-9._-]{1,64}$'),
    password_hash  text NOT NULL,
    is_admin       boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE memberships (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role        member_role NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

CREATE TABLE sessions (
    -- sha256 of the cookie value: a database leak does not leak live sessions.
    id_hash      bytea PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    source_ip    text
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);

CREATE TABLE api_tokens (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    tenant_id     uuid REFERENCES tenants (id) ON DELETE CASCADE,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    role          member_role,
    admin         boolean NOT NULL DEFAULT false,
    -- sha256 of the secret; the secret itself is never stored.
    secret_hash   bytea NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    last_used_at  timestamptz,
    revoked_at    timestamptz,
    CHECK ((admin AND tenant_id IS NULL AND role IS NULL) OR (NOT admin AND tenant_id IS NOT NULL AND role IS NOT NULL))
);
CREATE INDEX api_tokens_user ON api_tokens (user_id, created_at, id);
CREATE INDEX api_tokens_tenant ON api_tokens (tenant_id, created_at, id);

CREATE TABLE audit_log (
    id              bigserial PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT now(),
    tenant_id       uuid REFERENCES tenants (id) ON DELETE SET NULL,
    actor_user_id   uuid REFERENCES users (id) ON DELETE SET NULL,
    actor_username  text,
    actor_token_id  uuid,
    action          text NOT NULL,
    target          text,
    source_ip       text,
    details         jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, id DESC);

CREATE TABLE login_attempts (
    id         bigserial PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    username   text NOT NULL,
    source_ip  text NOT NULL,
    succeeded  boolean NOT NULL
);
CREATE INDEX login_attempts_user ON login_attempts (username, at) WHERE NOT succeeded;
CREATE INDEX login_attempts_ip ON login_attempts (source_ip, at) WHERE NOT succeeded;
