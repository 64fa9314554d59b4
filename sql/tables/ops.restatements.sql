-- ops.restatements: one row per (run, settled period, figure) that a run changed: late data restating numbers already reported.
create table if not exists ops.restatements (
    run_at timestamptz not null,
    period varchar not null,            -- a period of marts.period_kpis that was settled before the run
    figure varchar not null,            -- journeys, conversions or revenue
    before double not null,
    after double not null
);
