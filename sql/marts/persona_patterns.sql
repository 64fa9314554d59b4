-- marts.persona_patterns: one row per (persona, pattern) with a hit: journeys, their share of
-- the persona's converted journeys, revenue (marts.patterns, one row per journey and pattern).
with
hits as (
    select customer_personas.persona, patterns.pattern, patterns.journey_id, patterns.revenue
    from marts.patterns as patterns
    inner join marts.customer_personas as customer_personas using (customer_key)
),
conversions as (
    select customer_personas.persona, count(*) as conversions
    from journeys.journeys as journeys
    inner join marts.customer_personas as customer_personas using (customer_key)
    where journeys.converted
    group by all
),
final as (
    select
        hits.persona,
        hits.pattern,
        count(distinct hits.journey_id) as journeys,
        coalesce(count(distinct hits.journey_id) / nullif(any_value(conversions.conversions), 0), 0)::double
            as share_of_conversions,
        coalesce(sum(hits.revenue), 0)::decimal(38, 2) as revenue
    from hits
    left join conversions using (persona)
    group by hits.persona, hits.pattern
)
select * from final order by persona, pattern
