-- ops.mart_runs: one row per build of the marts (each `journey run`), full or incremental.
create table if not exists ops.mart_runs (
    run_at timestamptz not null,
    mode varchar not null,              -- full (first run, settings changed, journeys rebuilt in full) or incremental
    settings_fingerprint varchar not null,  -- sha256 of the path, graph, segment and leakage settings and the store regions
    journeys bigint not null,           -- journeys the marts were built from
    customers_rebuilt bigint not null   -- customers whose rows an incremental build replaced (all on a full one)
);
