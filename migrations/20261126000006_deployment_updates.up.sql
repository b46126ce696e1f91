-- Update by hash and roll back: the image a deployment ran before its last update.
ALTER TABLE deployments
    ADD COLUMN previous_image_sha256 bytea CHECK (length(previous_image_sha256) = 32),
    ADD COLUMN previous_build_id uuid REFERENCES builds (id) ON DELETE SET NULL;

-- Samples an agent reports every few seconds per running deployment; the API keeps a short
-- history per deployment (pruned as samples arrive).
CREATE TABLE deployment_stats (
    deployment_id uuid NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    at            timestamptz NOT NULL,
    sample        jsonb NOT NULL,
    PRIMARY KEY (deployment_id, at)
);
