DROP TABLE image_manifests;
DROP TABLE deployment_blocks;
DROP TABLE block_devices;
