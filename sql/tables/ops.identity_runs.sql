-- ops.identity_runs: one row per identity stitch (each `journey run`), full or incremental.
create table if not exists ops.identity_runs (
    run_at timestamptz not null,
    mode varchar not null,              -- full (first run, or the guards changed) or incremental
    guards_fingerprint varchar not null, -- sha256 of the identity settings the links were decided with
    identifiers bigint not null,
    identifiers_decided bigint not null, -- identifiers whose customer was decided again
    customers bigint not null,
    links bigint not null,
    links_dropped bigint not null,
    changes bigint not null             -- rows written to ops.identity_changes
);
