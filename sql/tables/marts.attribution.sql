-- marts.attribution: one row per (model, dimension, value): conversion and revenue credit.
create table if not exists marts.attribution (
    model varchar not null,             -- first_touch | last_touch | linear | position_based | markov
    dimension varchar not null,         -- channel | touchpoint
    value varchar not null,
    conversions double not null,
    revenue double not null,
    primary key (model, dimension, value)
);
