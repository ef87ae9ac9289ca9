-- One row per chat not deleted upstream: its channel, length, tool calls, duration, cost and
-- tokens. Days are UTC days whatever the session's TimeZone.

create or replace view chat_summary as
with
live_chats as (
    -- Chats deleted upstream (deleted_at set) are left out; query the table to see them.
    select
        source,
        chat_id,
        org_id,
        assistant_id,
        title,
        status,
        model,
        assistant_model,
        created_at,
        updated_at,
        cost
    from chats
    where deleted_at is null
),
transcript as (
    -- Cozmox keeps the transcript in `messages`; its output and input lists are not turns.
    select source, chat_id, role, created_at
    from messages
    where kind = 'message'
),
members as (
    select source, chat_id, channel_type
    from chat_members
),
cost_entries as (
    select source, chat_id, cost
    from costs
),
usage_rows as (
    select source, chat_id, input_tokens, output_tokens, total_tokens
    from usage
),
conversation as (
    select
        source,
        chat_id,
        count(*) as message_count,
        count(*) filter (where role = 'user') as turn_count,
        -- A tool call is counted by the tool message that answers it: Invent has tool messages
        -- but no tool_calls column, and a Cozmox tool_calls entry is answered by one.
        count(*) filter (where role = 'tool') as tool_call_count,
        min(created_at) as first_message_at,
        max(created_at) as last_message_at
    from transcript
    group by all
),
channels as (
    select source, chat_id, min(channel_type) as channel
    from members
    where channel_type is not null
    group by all
),
item_costs as (
    select source, chat_id, sum(cost) as cost
    from cost_entries
    group by all
),
tokens as (
    select
        source,
        chat_id,
        sum(input_tokens)::bigint as input_tokens,
        sum(output_tokens)::bigint as output_tokens,
        sum(coalesce(total_tokens, input_tokens + output_tokens))::bigint as total_tokens
    from usage_rows
    group by all
),
final as (
    select
        c.source,
        c.chat_id,
        c.org_id,
        c.assistant_id,
        c.title,
        c.status,
        ch.channel,
        coalesce(c.model, c.assistant_model) as model,
        c.created_at,
        c.updated_at,
        timezone('UTC', c.created_at)::date as created_day,
        coalesce(m.message_count, 0) as message_count,
        coalesce(m.turn_count, 0) as turn_count,
        coalesce(m.tool_call_count, 0) as tool_call_count,
        m.first_message_at,
        m.last_message_at,
        epoch(m.last_message_at - m.first_message_at) as duration_seconds,
        coalesce(c.cost, i.cost) as cost,
        coalesce(c.cost, i.cost) / nullif(m.message_count, 0) as cost_per_message,
        t.input_tokens,
        t.output_tokens,
        t.total_tokens
    from live_chats c
    left join conversation m using (source, chat_id)
    left join channels ch using (source, chat_id)
    left join item_costs i using (source, chat_id)
    left join tokens t using (source, chat_id)
)
select * from final;

comment on view chat_summary is 'One row per chat not deleted upstream: its channel, length, tool calls, duration, cost and tokens.';
comment on column chat_summary.source is '''cozmox'' or ''invent''.';
comment on column chat_summary.chat_id is 'The chat.';
comment on column chat_summary.org_id is 'The organisation (the account''s client): group by it to bill each one.';
comment on column chat_summary.assistant_id is 'The assistant.';
comment on column chat_summary.title is 'The chat''s name or title.';
comment on column chat_summary.status is 'The chat status, where the source has one.';
comment on column chat_summary.channel is 'Invent: the contact channel (whatsapp_bot, gmail, ...); NULL where none.';
comment on column chat_summary.model is 'Invent: the chat''s model; Cozmox: the assistant''s model.';
comment on column chat_summary.created_at is 'When the chat was created.';
comment on column chat_summary.updated_at is 'When it last changed.';
comment on column chat_summary.created_day is 'The UTC day it was created.';
comment on column chat_summary.message_count is 'Messages in the conversation (Cozmox: its messages list).';
comment on column chat_summary.turn_count is 'Of those, the user''s.';
comment on column chat_summary.tool_call_count is 'Tool calls answered in the conversation: its messages with role tool (Cozmox: one per tool_calls entry answered; Invent: tool messages).';
comment on column chat_summary.first_message_at is 'The first message''s time.';
comment on column chat_summary.last_message_at is 'The last message''s time.';
comment on column chat_summary.duration_seconds is 'Seconds from the first message to the last.';
comment on column chat_summary.cost is 'The chat''s cost (Cozmox); NULL where the source reports none.';
comment on column chat_summary.cost_per_message is 'cost / message_count.';
comment on column chat_summary.input_tokens is 'Input tokens over the chat.';
comment on column chat_summary.output_tokens is 'Output tokens over the chat.';
comment on column chat_summary.total_tokens is 'Total tokens over the chat.';
