-- One row per customer of core.events: their number of events and two sums over the hashes of
-- their events' rows, which do not depend on the order of the rows; what
-- ops.customer_fingerprints keeps for the next journey build to compare. The columns hashed
-- are those journeys are built from (jobs.JOURNEY_EVENT_COLUMNS; a test checks that a change
-- to any one of them changes the fingerprint). Each sum adds 32-bit halves of a 64-bit hash,
-- so it cannot overflow below 2**31 events.
with

hashed as (
    select
        customer_key,
        hash(
            event_id, channel, touchpoint, stage, occurred_at, ingested_at, is_conversion,
            order_id, store_id, product_id, category, fulfilment, revenue
        ) as row_hash
    from core.events
),

final as (
    select
        customer_key,
        count(*) as events,
        sum(row_hash >> 32)::bigint as hash_high,
        sum(row_hash & 4294967295)::bigint as hash_low
    from hashed
    group by customer_key
)

select * from final order by customer_key
