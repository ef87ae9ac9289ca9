-- What a run found the API doing that chatsync does not expect (each handled so nothing is
-- lost), and how many chats it saw against the totals the API itself reported.
alter table sync_runs add column if not exists warnings varchar;
alter table sync_runs add column if not exists api_total bigint;
alter table sync_runs add column if not exists api_seen bigint;

comment on column sync_runs.warnings is 'What the API did that chatsync does not expect, and how it was handled; one sentence each, separated by " | ". NULL when nothing.';
comment on column sync_runs.api_total is 'Chats the API said it had, where it says (Cozmox totalItems summed over the windows read; Invent pagination-count on a walk of the whole list).';
comment on column sync_runs.api_seen is 'Chats read against those totals: equal when the API''s pages and its counts agree.';
