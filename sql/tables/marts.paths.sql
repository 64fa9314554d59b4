-- marts.paths: one row per distinct cleaned path of closed journeys.
create table if not exists marts.paths (
    path varchar primary key,
    steps bigint not null,
    journeys bigint not null,
    conversions bigint not null,
    conversion_rate double not null,
    median_duration_seconds double not null
);
