-- Enrollment tokens get an id so administrators can list and revoke them (the primary key is the
-- token's hash, which must never leave the database).
ALTER TABLE agent_enrollments ADD COLUMN id uuid NOT NULL DEFAULT gen_random_uuid();
ALTER TABLE agent_enrollments ADD CONSTRAINT agent_enrollments_id_key UNIQUE (id);
CREATE INDEX agent_enrollments_created ON agent_enrollments (created_at DESC, id DESC);
