-- Per account (a source and the organisation its key belongs to), how current the warehouse is.

create or replace view freshness as
with
watermarks as (
    select source, org_id, account, watermark
    from sync_state
    where stream = 'chats'
),
account_runs as (
    -- Backfills read old history: they say nothing about how current the account is.
    select source, org_id, status, started_at, finished_at
    from sync_runs
    where mode <> 'backfill'
),
runs as (
    select
        source,
        org_id,
        max(finished_at) filter (where status = 'success') as last_success_at,
        max(started_at) as last_run_at,
        arg_max(status, started_at) as last_run_status
    from account_runs
    group by all
),
final as (
    select
        w.source,
        w.org_id,
        w.account,
        w.watermark,
        now() - w.watermark as watermark_age,
        r.last_success_at,
        r.last_run_at,
        r.last_run_status
    from watermarks w
    left join runs r using (source, org_id)
)
select * from final;

comment on view freshness is 'Per account (source and organisation), how current the warehouse is.';
comment on column freshness.source is '''cozmox'' or ''invent''.';
comment on column freshness.org_id is 'The account''s organisation.';
comment on column freshness.account is 'The account''s name, as of the sync that last moved the watermark.';
comment on column freshness.watermark is 'Everything updated before this is loaded.';
comment on column freshness.watermark_age is 'How long ago that is.';
comment on column freshness.last_success_at is 'When the account''s last successful sync finished.';
comment on column freshness.last_run_at is 'When its last sync started (backfills left out).';
comment on column freshness.last_run_status is 'How that sync ended. A run that failed before the API named its organisation (org_id NULL in sync_runs) counts for no account.';
