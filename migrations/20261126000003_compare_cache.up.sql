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

-- The newest successful build of a job (with or without a platform), as `latest` asks: an
-- index-only scan instead of sorting every build of the job.
CREATE INDEX builds_newest_success ON builds (job_id, finished_at DESC NULLS LAST, id DESC) WHERE status = 'succeeded';
CREATE INDEX builds_newest_success_platform ON builds (job_id, platform, finished_at DESC NULLS LAST, id DESC)
    WHERE status = 'succeeded';
