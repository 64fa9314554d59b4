-- marts.audience_members: one row per (audience, customer) in it as of the last run (the
-- rules of the audiences file; customer_key is the stitched, pseudonymous key).
create table if not exists marts.audience_members (
    audience varchar not null,
    customer_key varchar not null
);
