-- marts.segment_kpis: one row per segment of marts.journey_segments (store=S01, region=Italy, …) over its closed journeys.
create table if not exists marts.segment_kpis (
    dimension varchar not null,         -- all | status | first_channel | store | region | cohort | period
    segment varchar not null,
    journeys bigint not null,           -- closed journeys in the segment
    conversions bigint not null,
    conversion_rate double not null,
    revenue decimal(18, 2) not null,
    omnichannel_conversions bigint not null,
    omnichannel_share double,           -- of the conversions; null without one
    primary key (dimension, segment)
);
