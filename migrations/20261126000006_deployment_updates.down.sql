DROP TABLE deployment_stats;
ALTER TABLE deployments DROP COLUMN previous_build_id, DROP COLUMN previous_image_sha256;
