-- ops.persona_runs: one row per personas build: how many, chosen how, and the silhouette of
-- every number of personas tried.
create table if not exists ops.persona_runs (
    run_at timestamptz not null,
    customers bigint not null,
    personas integer not null,
    chosen_by varchar not null,         -- silhouette | config | too few customers
    seed bigint not null,
    silhouettes varchar not null,       -- JSON {"2": 0.41, "3": 0.52, ...}
    features varchar not null           -- the features clustered, comma-separated
);
