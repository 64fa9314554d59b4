-- marts.persona_dropoffs: one row per (persona, touchpoint): marts.dropoffs split by persona
-- (closed journeys through the touchpoint, drop-offs there, rate).
create table if not exists marts.persona_dropoffs (
    persona integer not null,
    touchpoint varchar not null,
    journeys_through bigint not null,
    exits bigint not null,
    dropoff_rate double not null
);
