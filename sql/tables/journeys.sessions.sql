-- journeys.sessions: one row per session (consecutive events of one customer in one channel).
create table if not exists journeys.sessions (
    session_id varchar primary key,
    customer_key varchar not null,
    channel varchar not null,
    started_at timestamptz not null,
    ended_at timestamptz not null,
    duration_seconds double not null,
    events bigint not null,
    first_touchpoint varchar not null,
    last_touchpoint varchar not null
);
