-- Tenant-owned block devices (albatross' `create-block`): each lives as a file on one agent,
-- which pins the deployments that use it there.
CREATE TABLE block_devices (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name             text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    size_mib         integer NOT NULL CHECK (size_mib BETWEEN 1 AND 1048576),
    agent_id         uuid REFERENCES agents (id) ON DELETE SET NULL,
    -- An upload waiting to be written into the device by its agent (then cleared).
    content_sha256   bytea REFERENCES blobs (sha256) CHECK (length(content_sha256) = 32),
    content_version  bigint NOT NULL DEFAULT 0,
    -- The last upload the agent wrote.
    applied_version  bigint NOT NULL DEFAULT 0,
    -- A download asks the agent for a copy of the device (export_requested > export_version);
    -- the agent sends it and the copy's blob is kept until the next one.
    export_requested bigint NOT NULL DEFAULT 0,
    export_version   bigint NOT NULL DEFAULT 0,
    export_sha256    bytea REFERENCES blobs (sha256) CHECK (length(export_sha256) = 32),
    -- What the agent last reported going wrong with it.
    message          text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name),
    CHECK (applied_version <= content_version),
    CHECK (export_version <= export_requested)
);
CREATE INDEX block_devices_agent ON block_devices (agent_id);

-- A block device of the unikernel's manifest, backed by one of the tenant's block devices;
-- a block device backs at most one deployment, and cannot be deleted while it does.
CREATE TABLE deployment_blocks (
    deployment_id   uuid NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    device          text NOT NULL,
    block_device_id uuid NOT NULL UNIQUE REFERENCES block_devices (id) ON DELETE RESTRICT,
    sector_size     integer NOT NULL DEFAULT 512 CHECK (sector_size IN (512, 1024, 2048, 4096)),
    PRIMARY KEY (deployment_id, device)
);

-- What a solo5 image's manifest declares, read once per image with the tender's own parser:
-- deployments are checked against it, and an update is offered only to an image that declares
-- the same devices. `solo5` false: not an hvt image (the agent refuses it, with the reason).
CREATE TABLE image_manifests (
    sha256 bytea PRIMARY KEY REFERENCES blobs (sha256) ON DELETE CASCADE,
    solo5  boolean NOT NULL,
    nets   text[] NOT NULL DEFAULT '{}',
    blocks text[] NOT NULL DEFAULT '{}'
);
