-- ops.core_runs: one row per build of core.events (each `journey run`), full or incremental,
-- and one per erasure (`journey forget`), after which the next build is full.
create table if not exists ops.core_runs (
    run_at timestamptz not null,
    mode varchar not null,              -- full (first run, inputs changed, after an erasure, or asked), incremental, or erasure
    inputs_fingerprint varchar not null, -- sha256 of what makes events of raw rows: sources, taxonomy, referrers, identity settings
    batches bigint not null,            -- batches (ops.batches) whose rows this build read
    events bigint not null,             -- rows of core.events after the build
    events_written bigint not null,     -- events inserted or made anew (a receipt whose lines came later)
    events_rekeyed bigint not null      -- events already stored whose customer_key changed
);
