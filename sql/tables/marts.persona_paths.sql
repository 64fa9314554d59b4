-- marts.persona_paths: one row per (persona, cleaned path) among each persona's ten most
-- common paths: journeys, conversions, rank (1 = its typical path; ties by path).
create table if not exists marts.persona_paths (
    persona integer not null,
    rank integer not null,
    path varchar not null,
    journeys bigint not null,
    conversions bigint not null
);
