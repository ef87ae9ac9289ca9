-- Every priced or metered item of both sources in one shape, with the organisation it is billed
-- to. Days are UTC days whatever the session's TimeZone.

create or replace view spend_items as
with
live_chats as (
    -- Chats deleted upstream (deleted_at set) are left out; query the table to see them.
    select source, chat_id, org_id, assistant_id, created_at
    from chats
    where deleted_at is null
),
cost_entries as (
    select
        source,
        chat_id,
        type,
        model,
        prompt_tokens,
        completion_tokens,
        reasoning_tokens,
        cached_prompt_tokens,
        cost
    from costs
),
usage_rows as (
    -- Cozmox usage rows repeat its cost entries: left out.
    select
        source,
        chat_id,
        model,
        created_at,
        input_tokens,
        output_tokens,
        total_tokens,
        reasoning_tokens,
        cached_input_tokens
    from usage
    where source <> 'cozmox'
),
cozmox_items as (
    -- Cozmox: each cost entry, with its tokens when it is a model cost.
    select
        k.source,
        c.org_id,
        k.chat_id,
        c.assistant_id,
        k.model,
        k.type as item_type,
        timezone('UTC', c.created_at)::date as day,
        k.prompt_tokens as input_tokens,
        k.completion_tokens as output_tokens,
        k.prompt_tokens + k.completion_tokens as total_tokens,
        k.reasoning_tokens,
        k.cached_prompt_tokens as cached_input_tokens,
        k.cost
    from cost_entries k
    join live_chats c using (source, chat_id)
),
usage_items as (
    -- Invent: each message's usage.
    select
        u.source,
        c.org_id,
        u.chat_id,
        c.assistant_id,
        u.model,
        'usage' as item_type,
        timezone('UTC', coalesce(u.created_at, c.created_at))::date as day,
        u.input_tokens,
        u.output_tokens,
        coalesce(u.total_tokens, u.input_tokens + u.output_tokens) as total_tokens,
        u.reasoning_tokens,
        u.cached_input_tokens,
        null::double as cost
    from usage_rows u
    join live_chats c using (source, chat_id)
),
final as (
    select * from cozmox_items
    union all by name
    select * from usage_items
)
select * from final;

comment on view spend_items is 'Every priced or metered item of both sources in one shape: Cozmox cost entries and Invent message usage.';
comment on column spend_items.source is '''cozmox'' or ''invent''.';
comment on column spend_items.org_id is 'The organisation of the item''s chat: who the item is billed to.';
comment on column spend_items.chat_id is 'The chat.';
comment on column spend_items.assistant_id is 'The chat''s assistant.';
comment on column spend_items.model is 'The model, where the item has one (voice and transcriber costs have none).';
comment on column spend_items.item_type is 'Cozmox cost type (model, voice, transcriber, ...) or usage.';
comment on column spend_items.day is 'UTC day: the message''s (Invent) or the chat''s creation (Cozmox).';
comment on column spend_items.input_tokens is 'Input tokens.';
comment on column spend_items.output_tokens is 'Output tokens.';
comment on column spend_items.total_tokens is 'Total tokens.';
comment on column spend_items.reasoning_tokens is 'Reasoning tokens, part of the output (Cozmox: reasoningTokens of the cost entry); NULL where the item says none.';
comment on column spend_items.cached_input_tokens is 'Input tokens served from a cache (Cozmox: cachedPromptTokens of the cost entry); NULL where the item says none.';
comment on column spend_items.cost is 'Cost (Cozmox); NULL where the source reports none.';
