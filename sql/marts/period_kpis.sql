-- marts.period_kpis: one row per period (config [graphs] period) in which closed journeys ended.
-- A journey belongs to the period of its end: its conversion, or its last event for a drop-off.
-- A period is settled when it is over (the data goes past its end) and its drop-offs are all
-- known: a drop-off is known only a journey timeout after its last event, so no journey still
-- open (which may yet end as a drop-off) may have its last event before the period's end.
with

closed_journeys as (
    select
        journey_id,
        converted,
        revenue,
        seconds_to_convert,
        date_trunc($period, coalesce(converted_at, ended_at))::date as period_start
    from journeys.journeys
    where status <> 'open'
),

omnichannel_journeys as (
    select distinct journey_id
    from marts.patterns
    where list_contains($omnichannel, pattern)  -- dashboards.OMNICHANNEL_PATTERNS
),

first_open as (
    select min(ended_at) as ended_at from journeys.journeys where status = 'open'
),

data_end as (
    select max(ended_at) as ended_at from journeys.journeys
),

final as (
    select
        period_start,
        strftime(
            period_start,
            case $period when 'month' then '%Y-%m' when 'week' then '%G-W%V' else '%Y-%m-%d' end
        ) as period,
        (period_start + ('1 ' || $period)::interval)::date as period_end,
        period_end <= any_value(data_end.ended_at)
        and coalesce(period_end <= any_value(first_open.ended_at), true) as is_settled,
        count(*) as journeys,
        count(*) filter (where converted) as conversions,
        conversions / journeys as conversion_rate,
        coalesce(sum(revenue) filter (where converted), 0) as revenue,
        count(omnichannel_journeys.journey_id) filter (where converted) as omnichannel_conversions,
        omnichannel_conversions / nullif(conversions, 0) as omnichannel_share,
        median(seconds_to_convert) filter (where converted) as median_seconds_to_convert
    from closed_journeys
    left join omnichannel_journeys using (journey_id)
    cross join first_open
    cross join data_end
    group by period_start
)

select * from final order by period_start
