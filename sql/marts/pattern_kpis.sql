-- marts.pattern_kpis: one row per (pattern, variant): converted journeys, revenue and time to convert.
with

hits as (
    select
        patterns.pattern,
        patterns.variant,
        patterns.revenue,
        journeys.seconds_to_convert
    from marts.patterns as patterns
    inner join journeys.journeys as journeys using (journey_id)
),

final as (
    select
        pattern,
        variant,
        count(*) as journeys,
        coalesce(sum(revenue), 0) as revenue,
        median(seconds_to_convert)::double as median_seconds_to_convert,
        quantile_cont(seconds_to_convert, 0.9)::double as p90_seconds_to_convert
    from hits
    group by pattern, variant
)

select * from final order by pattern, variant
