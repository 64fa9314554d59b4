-- persona features: one row per customer with a journey: the habits its persona is made of
-- (personas.FEATURES), from one row per journey (marts.journey_facts: its steps' channels by
-- [leakage]'s channel lists, counted when the journey was kept).
with
customer_journeys as (
    select
        journeys.customer_key,
        journeys.status,
        journeys.converted,
        journeys.revenue,
        journeys.seconds_to_convert,
        journeys.ended_at,
        facts.furthest_stage_order,
        facts.own_steps,
        facts.online_steps,
        facts.offline_steps,
        list_contains(journeys.patterns, 'ropo') as is_ropo,
        list_contains(journeys.patterns, 'click_and_collect') as is_click_and_collect,
        list_contains(journeys.patterns, 'try_and_buy') as is_try_and_buy
    from journeys.journeys as journeys
    inner join marts.journey_facts as facts using (journey_id)
),
per_customer as (
    select
        customer_key,
        count(*) as journeys,
        count(*) filter (where status <> 'open') as closed_journeys,
        count(*) filter (where converted) as conversions,
        coalesce(sum(revenue) filter (where converted), 0)::double as revenue,
        coalesce(avg(revenue) filter (where converted), 0)::double as basket_value,
        coalesce(max(furthest_stage_order), 0)::integer as furthest_stage,
        (median(seconds_to_convert) filter (where converted) / 86400)::double as days_to_convert,
        avg(is_ropo::integer)::double as ropo_share,
        avg(is_click_and_collect::integer)::double as click_and_collect_share,
        avg(is_try_and_buy::integer)::double as try_and_buy_share,
        max(ended_at) as last_seen_at,
        coalesce(sum(online_steps) / nullif(sum(own_steps), 0), 0)::double as online_share,
        coalesce(sum(offline_steps) / nullif(sum(own_steps), 0), 0)::double as offline_share
    from customer_journeys
    group by customer_key
),
final as (
    select
        per_customer.customer_key,
        per_customer.journeys,
        per_customer.closed_journeys,
        per_customer.conversions,
        coalesce(per_customer.conversions / nullif(per_customer.closed_journeys, 0), 0)::double
            as conversion_rate,
        per_customer.revenue,
        per_customer.basket_value,
        per_customer.online_share,
        per_customer.offline_share,
        per_customer.furthest_stage,
        per_customer.days_to_convert,
        per_customer.ropo_share,
        per_customer.click_and_collect_share,
        per_customer.try_and_buy_share,
        (
            epoch(max(per_customer.last_seen_at) over () - per_customer.last_seen_at) / 86400
        )::double as recency_days
    from per_customer
)
select * from final  -- in no order: personas.fit_personas takes the customers in key order
