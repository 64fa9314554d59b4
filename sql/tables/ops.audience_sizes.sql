-- ops.audience_sizes: one row per (run, audience): its size, and how many customers entered
-- and left it since the run before (counted, not named). A history, kept in ops: the marts
-- are made anew when their definitions change, this is not.
create table if not exists ops.audience_sizes (
    run_at timestamptz not null,
    as_of timestamptz,                  -- the end of the data the rules looked back from
    audience varchar not null,
    members bigint not null,
    entered bigint not null,            -- members now that were not at the run before
    exited bigint not null              -- members at the run before that are not now
);
