-- marts.dropoffs: one row per touchpoint: journeys through it, exits there, drop-off rate, leakage.
create table if not exists marts.dropoffs (
    touchpoint varchar primary key,
    journeys_through bigint not null,   -- closed journeys (converted or dropped) with the touchpoint on their path
    exits bigint not null,              -- dropped journeys whose path ends at the touchpoint
    dropoff_rate double not null,       -- exits / journeys_through
    leaks bigint not null,              -- converted journeys whose last online step it was, bought offline (marts.leakage)
    leakage_rate double not null        -- leaks / journeys_through
);
