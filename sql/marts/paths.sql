-- marts.paths: one row per distinct cleaned path of closed journeys.
with

closed_journeys as (
    select
        path,
        converted,
        epoch(ended_at) - epoch(started_at) as duration_seconds
    from journeys.journeys
    where status <> 'open'
),

final as (
    select
        path,
        len(string_split(path, ' > ')) as steps,
        count(*) as journeys,
        count(*) filter (where converted) as conversions,
        conversions / journeys as conversion_rate,
        median(duration_seconds)::double as median_duration_seconds
    from closed_journeys
    group by path
)

select * from final order by journeys desc, path
