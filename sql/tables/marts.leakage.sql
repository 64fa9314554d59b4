-- marts.leakage: one row per (last online touchpoint, its stage, channel left, channel converted in):
-- converted journeys that left online and bought offline within the window (leakage, not loss).
create table if not exists marts.leakage (
    from_touchpoint varchar not null,   -- the journey's last online step before the conversion
    from_stage varchar not null,
    from_channel varchar not null,      -- web | app | ... ([leakage] online_channels)
    to_channel varchar not null,        -- store | phone | ... ([leakage] offline_channels)
    journeys bigint not null,
    customers bigint not null,
    revenue decimal(18, 2),
    median_seconds double,              -- from the last online step to the conversion
    primary key (from_touchpoint, from_stage, from_channel, to_channel)
);
