-- marts.pattern_periods: one row per (period, pattern, variant): the converted journeys with the pattern.
create table if not exists marts.pattern_periods (
    period_start date not null,         -- of the conversion (config [graphs] period)
    period varchar not null,
    pattern varchar not null,
    variant varchar,                    -- collected | no_show for click_and_collect
    journeys bigint not null,
    revenue decimal(18, 2) not null
);
