-- journeys.replaced_journeys: one row per journey an incremental journey build replaced, as it
-- was when the marts were last built: what the marts read of a journey. Emptied by a marts build.
create table if not exists journeys.replaced_journeys (
    journey_id varchar not null,
    customer_key varchar not null,
    started_at timestamptz not null,
    status varchar not null,
    converted boolean not null,
    revenue decimal(18, 2),
    first_channel varchar not null
);
