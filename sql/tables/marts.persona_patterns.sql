-- marts.persona_patterns: one row per (persona, pattern) with a hit: the journeys that follow
-- it, their share of the persona's converted journeys and their revenue.
create table if not exists marts.persona_patterns (
    persona integer not null,
    pattern varchar not null,
    journeys bigint not null,
    share_of_conversions double not null,
    revenue decimal(38, 2) not null
);
