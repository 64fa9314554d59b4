-- marts.funnel: one row per journey stage, awareness to loyalty.
create table if not exists marts.funnel (
    stage_order integer primary key,
    stage varchar not null,
    journeys bigint not null,           -- closed journeys reaching the stage (or a later one)
    share_of_journeys double not null,
    dropoffs bigint not null,           -- dropped journeys whose furthest stage is this one
    dropoff_rate double not null        -- dropoffs / journeys
);
