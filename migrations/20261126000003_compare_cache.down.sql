DROP TABLE compare_cache;
