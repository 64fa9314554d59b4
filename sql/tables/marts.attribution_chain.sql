-- marts.attribution_chain: one row per (dimension, from, to) move of the Markov chain over the
-- finished journeys (START -> values -> CONVERSION | NULL), counted: what the Markov model's
-- removal effects are solved from. Kept between runs and updated as attribution_numerators.
create table if not exists marts.attribution_chain (
    dimension varchar not null,         -- channel | touchpoint
    from_value varchar not null,        -- a value or START
    to_value varchar not null,          -- a value, CONVERSION or NULL
    transitions bigint not null,
    primary key (dimension, from_value, to_value)
);
