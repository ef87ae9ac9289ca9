-- Cost and tokens per UTC day, organisation, model and assistant.

create or replace view daily_spend as
with
items as (
    select * from spend_items
),
final as (
    select
        day,
        source,
        org_id,
        model,
        assistant_id,
        count(distinct chat_id) as chats,
        sum(input_tokens)::bigint as input_tokens,
        sum(output_tokens)::bigint as output_tokens,
        sum(total_tokens)::bigint as total_tokens,
        sum(reasoning_tokens)::bigint as reasoning_tokens,
        sum(cached_input_tokens)::bigint as cached_input_tokens,
        sum(cost) as cost
    from items
    group by all
)
select * from final;

comment on view daily_spend is 'Cost and tokens per UTC day, source, organisation, model and assistant.';
comment on column daily_spend.day is 'The UTC day.';
comment on column daily_spend.source is '''cozmox'' or ''invent''.';
comment on column daily_spend.org_id is 'The organisation the spend is billed to.';
comment on column daily_spend.model is 'The model (NULL: costs with no model, such as voice).';
comment on column daily_spend.assistant_id is 'The assistant.';
comment on column daily_spend.chats is 'Chats with spend that day.';
comment on column daily_spend.input_tokens is 'Input tokens.';
comment on column daily_spend.output_tokens is 'Output tokens.';
comment on column daily_spend.total_tokens is 'Total tokens.';
comment on column daily_spend.reasoning_tokens is 'Reasoning tokens.';
comment on column daily_spend.cached_input_tokens is 'Cached input tokens.';
comment on column daily_spend.cost is 'Cost; NULL where the source reports none.';
