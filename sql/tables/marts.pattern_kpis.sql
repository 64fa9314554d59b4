-- marts.pattern_kpis: one row per (pattern, variant): converted journeys, revenue and time to convert.
create table if not exists marts.pattern_kpis (
    pattern varchar not null,
    variant varchar,                    -- collected | no_show for click_and_collect
    journeys bigint not null,
    revenue decimal(18, 2) not null,
    median_seconds_to_convert double,   -- from the journey's first event to its conversion
    p90_seconds_to_convert double
);
