-- ops.core_runs: one row per build of core.events (each `journey run`), full or incremental,
-- and one per erasure (`journey forget`), after which the next build is full. A build is
-- incremental when the last row has the inputs' fingerprint and the core tables still hold
-- the rows it counted. A full build writes its events a chunk a transaction, after a
-- 'full-started' row (no fingerprint): one interrupted midway is redone in full.
create table if not exists ops.core_runs (
    run_at timestamptz not null,
    mode varchar not null,              -- full (first run, inputs or CORE_LOGIC_VERSION changed, core tables changed since, after an erasure, or asked), incremental, erasure, or full-started
    inputs_fingerprint varchar not null, -- sha256 of what makes events of raw rows: logic version, sources, taxonomy, referrers, identity settings ('' for an erasure)
    batches bigint not null,            -- batches (ops.batches) whose rows this build read
    events bigint not null,             -- rows of core.events after the build (or erasure)
    identifiers bigint not null,        -- rows of core.customers after it
    links bigint not null,              -- rows of core.identity_links after it
    events_written bigint not null,     -- events inserted or made anew (a receipt whose lines came later)
    events_rekeyed bigint not null      -- events already stored whose customer_key changed
);
-- databases made between the two commits of 2026-12-02 get the two counts (null: the next build is full)
alter table ops.core_runs add column if not exists identifiers bigint;
alter table ops.core_runs add column if not exists links bigint;
