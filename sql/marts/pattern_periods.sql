-- marts.pattern_periods: one row per (period, pattern, variant): the converted journeys with the pattern.
with

hits as (
    select
        pattern,
        variant,
        revenue,
        date_trunc($period, converted_at)::date as period_start
    from marts.patterns
),

final as (
    select
        period_start,
        strftime(
            period_start,
            case $period when 'month' then '%Y-%m' when 'week' then '%G-W%V' else '%Y-%m-%d' end
        ) as period,
        pattern,
        variant,
        count(*) as journeys,
        coalesce(sum(revenue), 0) as revenue
    from hits
    group by period_start, pattern, variant
)

select * from final order by period_start, pattern, variant
