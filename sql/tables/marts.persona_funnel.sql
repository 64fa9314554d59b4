-- marts.persona_funnel: one row per (persona, journey stage): marts.funnel split by persona.
create table if not exists marts.persona_funnel (
    persona integer not null,
    stage_order integer not null,
    stage varchar not null,
    journeys bigint not null,
    share_of_journeys double not null,
    dropoffs bigint not null,
    dropoff_rate double not null
);
