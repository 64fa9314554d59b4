-- journeys.replaced_steps: one row per step an incremental journey build replaced, as it was
-- when the marts were last built (the rows of journeys.replaced_customers). The marts subtract
-- what these rows added and add what replaced them; a marts build empties it.
create table if not exists journeys.replaced_steps (
    journey_id varchar not null,
    position bigint not null,           -- 1-based, in event-time order
    event_id varchar not null,
    customer_key varchar not null,
    session_id varchar not null,
    occurred_at timestamptz not null,
    touchpoint varchar not null,
    channel varchar not null,
    stage varchar not null,
    is_conversion boolean not null,
    is_fulfilment boolean not null,     -- a later step of the journey's order (pickup, review, return)
    store_id varchar,                   -- the store of a store, POS or pickup event
    revenue decimal(18, 2)              -- of a conversion or a return
);
