-- marts.audience_sizes: one row per (run, audience): its size, and how many customers entered
-- and left it since the run before (counted, not named).
create table if not exists marts.audience_sizes (
    run_at timestamptz not null,
    as_of timestamptz,                  -- the end of the data the rules looked back from
    audience varchar not null,
    members bigint not null,
    entered bigint not null,
    "left" bigint not null
);
