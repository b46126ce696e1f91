DROP INDEX agent_enrollments_created;
ALTER TABLE agent_enrollments DROP COLUMN id;
