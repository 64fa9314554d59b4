-- marts.period_kpis: one row per period (config [graphs] period) in which closed journeys ended.
create table if not exists marts.period_kpis (
    period_start date primary key,
    period varchar not null,            -- 2026-03 (month), 2026-W11 (week), 2026-03-14 (day)
    period_end date not null,           -- the first day after the period
    is_settled boolean not null,        -- over (the data goes past its end), and no open journey's last event is before its end: its drop-offs are all known
    journeys bigint not null,           -- closed journeys that ended in the period (at their conversion or last event)
    conversions bigint not null,
    conversion_rate double not null,
    revenue decimal(18, 2) not null,
    omnichannel_conversions bigint not null,  -- converted journeys with ropo, click_and_collect or try_and_buy
    omnichannel_share double,           -- of the conversions; null without one
    median_seconds_to_convert double    -- null without a conversion
);
