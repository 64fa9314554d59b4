-- marts.persona_transitions: one row per (persona, from_touchpoint, to_touchpoint): the
-- transition graph of each persona's journeys (summed over personas: segment "all" of
-- marts.transitions).
create table if not exists marts.persona_transitions (
    persona integer not null,
    from_touchpoint varchar not null,   -- a touchpoint or START
    to_touchpoint varchar not null,     -- a touchpoint, CONVERSION or DROP_OFF
    transitions bigint not null,
    customers bigint not null,
    probability double not null,        -- transitions / all transitions out of from_touchpoint in the persona
    median_seconds double,
    p90_seconds double
);
