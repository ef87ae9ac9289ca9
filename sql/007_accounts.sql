-- Every account (a source, a key and its organisation) keeps its own state: the watermark and
-- backfill windows are keyed by the organisation the API reports, and runs name their account.
-- A warehouse made before accounts held one watermark per source; it becomes the watermark of
-- the one organisation that source's chats belong to. Where chats of several organisations
-- shared it, no organisation can be sure it was complete, so each reads its history again.

create temp table account_orgs as
select source, min(org_id) as org_id
from chats
where org_id is not null
group by source
having count(distinct org_id) = 1;

create table sync_state_by_account (
    source              varchar not null,
    org_id              varchar not null,
    stream              varchar not null,
    watermark           timestamptz,
    updated_at          timestamptz not null,
    account             varchar,
    primary key (source, org_id, stream)
);

insert into sync_state_by_account
select s.source, o.org_id, s.stream, s.watermark, s.updated_at, s.source
from sync_state s
join account_orgs o using (source);

drop table sync_state;
alter table sync_state_by_account rename to sync_state;

create table backfill_windows_by_account (
    source              varchar not null,
    org_id              varchar not null,
    window_start        timestamptz not null,
    window_end          timestamptz not null,
    finished_at         timestamptz not null,
    run_id              varchar,
    primary key (source, org_id, window_start, window_end)
);

insert into backfill_windows_by_account
select b.source, o.org_id, b.window_start, b.window_end, b.finished_at, b.run_id
from backfill_windows b
join account_orgs o using (source);

drop table backfill_windows;
alter table backfill_windows_by_account rename to backfill_windows;

alter table sync_runs add column if not exists account varchar;
alter table sync_runs add column if not exists org_id varchar;
update sync_runs r set account = r.source, org_id = o.org_id
from account_orgs o where o.source = r.source;
update sync_runs set account = source where account is null;

drop table account_orgs;

comment on table sync_state is 'Per account and stream, the updated-at watermark: every change before it is loaded. Written in the same transaction as the rows it covers.';
comment on column sync_state.source is '''cozmox'' or ''invent''.';
comment on column sync_state.org_id is 'The account''s organisation, as the API reports it (never the shorthand c).';
comment on column sync_state.stream is 'What the watermark follows; ''chats''.';
comment on column sync_state.watermark is 'Everything updated before this has been loaded.';
comment on column sync_state.updated_at is 'When the watermark last moved.';
comment on column sync_state.account is 'The name of the account that last moved it.';
comment on table backfill_windows is 'Updated-at windows a backfill has finished, per account: a killed backfill resumes after them.';
comment on column backfill_windows.source is '''cozmox'' or ''invent''.';
comment on column backfill_windows.org_id is 'The account''s organisation.';
comment on column backfill_windows.window_start is 'Start of the window (inclusive).';
comment on column backfill_windows.window_end is 'End of the window (exclusive).';
comment on column backfill_windows.finished_at is 'When its last rows committed.';
comment on column backfill_windows.run_id is 'The run that finished it.';
comment on column sync_runs.account is 'The account the run was for (its name in chatsync.toml, or cozmox / invent).';
comment on column sync_runs.org_id is 'The account''s organisation; NULL when the run failed before the API named it.';
