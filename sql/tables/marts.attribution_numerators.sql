-- marts.attribution_numerators: one row per (model, dimension, value, denominator): the
-- heuristic models' credit as exact fractions summed over every converted journey, which
-- marts.attribution divides out. Kept between runs; an incremental marts build adds the rebuilt
-- journeys' numerators and subtracts those of the rows they replaced.
create table if not exists marts.attribution_numerators (
    model varchar not null,             -- first_touch | last_touch | linear | position_based
    dimension varchar not null,         -- channel | touchpoint
    value varchar not null,
    denominator bigint not null,        -- a journey's share is numerator / denominator
    numerator bigint not null,          -- summed over the journeys with this denominator
    revenue_numerator decimal(38, 2) not null,  -- their revenue times their numerator, summed
    primary key (model, dimension, value, denominator)
);
