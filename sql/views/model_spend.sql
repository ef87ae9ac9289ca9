-- Models ranked by spend, then by tokens, one row per organisation's model. The rank runs over
-- the whole table, every organisation together, as the queries of README and `chatsync demo`
-- expect; the rows of one organisation keep their order among themselves.

create or replace view model_spend as
with
items as (
    select * from spend_items
    where model is not null
),
final as (
    select
        rank() over (order by sum(cost) desc nulls last, sum(total_tokens)::bigint desc nulls last) as spend_rank,
        source,
        org_id,
        model,
        count(distinct chat_id) as chats,
        sum(input_tokens)::bigint as input_tokens,
        sum(output_tokens)::bigint as output_tokens,
        sum(total_tokens)::bigint as total_tokens,
        sum(cost) as cost
    from items
    group by all
)
select * from final;

comment on view model_spend is 'Models ranked by spend, then by tokens, per source and organisation.';
comment on column model_spend.spend_rank is '1 for the model that cost most, ranked over the whole table (all organisations together); for one organisation''s ranking, filter on org_id and order by spend_rank (the numbers then have gaps).';
comment on column model_spend.source is '''cozmox'' or ''invent''.';
comment on column model_spend.org_id is 'The organisation the spend is billed to.';
comment on column model_spend.model is 'The model.';
comment on column model_spend.chats is 'Chats that used it.';
comment on column model_spend.input_tokens is 'Input tokens.';
comment on column model_spend.output_tokens is 'Output tokens.';
comment on column model_spend.total_tokens is 'Total tokens.';
comment on column model_spend.cost is 'Cost; NULL where the source reports none.';
