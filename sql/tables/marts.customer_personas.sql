-- marts.customer_personas: one row per customer with a journey: the persona it is in
-- (customer_key is the stitched, pseudonymous key; no identifier of a person).
create table if not exists marts.customer_personas (
    customer_key varchar not null,
    persona integer not null
);
