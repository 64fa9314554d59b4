-- marts.persona_paths: one row per (persona, cleaned path) among each persona's ten most
-- common paths; rank 1 is the persona's typical path (ties: the path first in sort order).
with
counted as (
    select customer_personas.persona, journeys.path, count(*) as journeys,
        count(*) filter (where journeys.converted) as conversions
    from journeys.journeys as journeys
    inner join marts.customer_personas as customer_personas using (customer_key)
    group by all
),
ranked as (
    select *, row_number() over (partition by persona order by journeys desc, path) as rank
    from counted
),
final as (
    select persona, rank::integer as rank, path, journeys, conversions
    from ranked
    where rank <= 10
)
select * from final order by persona, rank
