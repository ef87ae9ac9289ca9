-- Updated-at windows a backfill has finished, so that a killed backfill resumes where it stopped
-- and a finished one run again reads nothing new.
create table if not exists backfill_windows (
    source              varchar not null,
    window_start        timestamptz not null,
    window_end          timestamptz not null,
    finished_at         timestamptz not null,
    run_id              varchar,
    primary key (source, window_start, window_end)
);
