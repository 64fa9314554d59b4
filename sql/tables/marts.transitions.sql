-- marts.transitions: one row per (segment, from_touchpoint, to_touchpoint) edge of the transition graph.
create table if not exists marts.transitions (
    segment varchar not null,           -- all | converted | dropped | <dimension>=<value>, e.g. store=S01, period=2026-03
    from_touchpoint varchar not null,   -- a touchpoint or START
    to_touchpoint varchar not null,     -- a touchpoint, CONVERSION or DROP_OFF
    transitions bigint not null,
    customers bigint not null,
    probability double not null,        -- transitions / all transitions out of from_touchpoint in the segment
    median_seconds double,
    p90_seconds double,
    dimension varchar not null          -- what the segment splits by: all | status | first_channel | store | region | cohort | period
);
