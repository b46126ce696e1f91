-- Comparisons of two finalized builds never change, so each is computed once.
CREATE TABLE compare_cache (
    left_build   uuid NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    right_build  uuid NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    version      integer NOT NULL,
    data         jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (left_build, right_build, version)
);
CREATE INDEX compare_cache_right ON compare_cache (right_build);
