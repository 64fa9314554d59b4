-- ops.journey_runs: one row per rebuild of sessions, journeys and steps (each `journey run`), full or incremental.
create table if not exists ops.journey_runs (
    run_at timestamptz not null,
    mode varchar not null,              -- full (first run, rules changed, data end moved back, or asked) or incremental
    rules_fingerprint varchar not null, -- sha256 of the session, journey, path and pattern rules
    as_of timestamptz not null,         -- the end of the data the statuses were decided at
    customers bigint not null,          -- customers in core.events
    customers_rebuilt bigint not null,  -- customers whose sessions, journeys and steps were rebuilt
    events_rebuilt bigint not null,
    journeys_rebuilt bigint not null
);
