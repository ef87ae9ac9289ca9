-- Assistants ranked by spend, one row per organisation's assistant. The rank runs over the whole
-- table, every organisation together, as the queries of README and `chatsync demo` expect; the
-- rows of one organisation keep their order among themselves.

create or replace view assistant_spend as
with
items as (
    select * from spend_items
),
final as (
    select
        rank() over (order by sum(cost) desc nulls last) as spend_rank,
        source,
        org_id,
        assistant_id,
        count(distinct chat_id) as chats,
        sum(total_tokens)::bigint as total_tokens,
        sum(cost) as cost
    from items
    group by all
)
select * from final;

comment on view assistant_spend is 'Assistants ranked by spend, per source and organisation.';
comment on column assistant_spend.spend_rank is '1 for the assistant that cost most, ranked over the whole table (all organisations together); for one organisation''s ranking, filter on org_id and order by spend_rank (the numbers then have gaps).';
comment on column assistant_spend.source is '''cozmox'' or ''invent''.';
comment on column assistant_spend.org_id is 'The organisation the spend is billed to.';
comment on column assistant_spend.assistant_id is 'The assistant.';
comment on column assistant_spend.chats is 'Its chats with spend.';
comment on column assistant_spend.total_tokens is 'Tokens.';
comment on column assistant_spend.cost is 'Cost; NULL where the source reports none.';
