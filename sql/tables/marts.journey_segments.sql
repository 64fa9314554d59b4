-- marts.journey_segments: one row per (journey, segment): which segments of marts.transitions a journey is in.
create table if not exists marts.journey_segments (
    journey_id varchar not null,
    dimension varchar not null,         -- all | status | first_channel | store | region | cohort | period
    segment varchar not null,           -- all | converted | dropped | <dimension>=<value>
    primary key (journey_id, segment)
);
