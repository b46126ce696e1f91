DROP INDEX builds_newest_success_platform;
DROP INDEX builds_newest_success;
DROP TABLE compare_cache;
