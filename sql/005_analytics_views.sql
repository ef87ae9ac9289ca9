-- The analytics layer: one conformed shape for both sources. Chats deleted upstream
-- (deleted_at set) are left out of every view; query the tables to see them.
-- Days are UTC days whatever the session's TimeZone.

create or replace view chat_summary as
with
live_chats as (
    select * from chats where deleted_at is null
),
conversation as (
    -- Cozmox keeps the transcript in `messages`; its output and input lists are not turns.
    select
        source,
        chat_id,
        count(*) as message_count,
        count(*) filter (where role = 'user') as turn_count,
        min(created_at) as first_message_at,
        max(created_at) as last_message_at
    from messages
    where kind = 'message'
    group by all
),
channels as (
    select source, chat_id, min(channel_type) as channel
    from chat_members
    where channel_type is not null
    group by all
),
item_costs as (
    select source, chat_id, sum(cost) as cost
    from costs
    group by all
),
tokens as (
    select
        source,
        chat_id,
        sum(input_tokens)::bigint as input_tokens,
        sum(output_tokens)::bigint as output_tokens,
        sum(coalesce(total_tokens, input_tokens + output_tokens))::bigint as total_tokens
    from usage
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

comment on view chat_summary is 'One row per chat not deleted upstream: its channel, length, duration, cost and tokens.';
comment on column chat_summary.source is '''cozmox'' or ''invent''.';
comment on column chat_summary.chat_id is 'The chat.';
comment on column chat_summary.org_id is 'The organisation.';
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
comment on column chat_summary.first_message_at is 'The first message''s time.';
comment on column chat_summary.last_message_at is 'The last message''s time.';
comment on column chat_summary.duration_seconds is 'Seconds from the first message to the last.';
comment on column chat_summary.cost is 'The chat''s cost (Cozmox); NULL where the source reports none.';
comment on column chat_summary.cost_per_message is 'cost / message_count.';
comment on column chat_summary.input_tokens is 'Input tokens over the chat.';
comment on column chat_summary.output_tokens is 'Output tokens over the chat.';
comment on column chat_summary.total_tokens is 'Total tokens over the chat.';

create or replace view spend_items as
with
live_chats as (
    select source, chat_id, assistant_id, created_at from chats where deleted_at is null
),
cozmox_items as (
    -- Cozmox: each cost entry, with its tokens when it is a model cost.
    select
        k.source,
        k.chat_id,
        c.assistant_id,
        k.model,
        k.type as item_type,
        timezone('UTC', c.created_at)::date as day,
        k.prompt_tokens as input_tokens,
        k.completion_tokens as output_tokens,
        k.prompt_tokens + k.completion_tokens as total_tokens,
        null::bigint as reasoning_tokens,
        null::bigint as cached_input_tokens,
        k.cost
    from costs k
    join live_chats c using (source, chat_id)
),
usage_items as (
    -- Invent: each message's usage. (Cozmox usage rows repeat its cost entries: left out.)
    select
        u.source,
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
    from usage u
    join live_chats c using (source, chat_id)
    where u.source <> 'cozmox'
)
select * from cozmox_items
union all by name
select * from usage_items;

comment on view spend_items is 'Every priced or metered item of both sources in one shape: Cozmox cost entries and Invent message usage.';
comment on column spend_items.source is '''cozmox'' or ''invent''.';
comment on column spend_items.chat_id is 'The chat.';
comment on column spend_items.assistant_id is 'The chat''s assistant.';
comment on column spend_items.model is 'The model, where the item has one (voice and transcriber costs have none).';
comment on column spend_items.item_type is 'Cozmox cost type (model, voice, transcriber, ...) or usage.';
comment on column spend_items.day is 'UTC day: the message''s (Invent) or the chat''s creation (Cozmox).';
comment on column spend_items.input_tokens is 'Input tokens.';
comment on column spend_items.output_tokens is 'Output tokens.';
comment on column spend_items.total_tokens is 'Total tokens.';
comment on column spend_items.reasoning_tokens is 'Reasoning tokens (Invent).';
comment on column spend_items.cached_input_tokens is 'Cached input tokens (Invent).';
comment on column spend_items.cost is 'Cost (Cozmox); NULL where the source reports none.';

create or replace view daily_spend as
select
    day,
    source,
    model,
    assistant_id,
    count(distinct chat_id) as chats,
    sum(input_tokens)::bigint as input_tokens,
    sum(output_tokens)::bigint as output_tokens,
    sum(total_tokens)::bigint as total_tokens,
    sum(reasoning_tokens)::bigint as reasoning_tokens,
    sum(cached_input_tokens)::bigint as cached_input_tokens,
    sum(cost) as cost
from spend_items
group by all;

comment on view daily_spend is 'Cost and tokens per UTC day, source, model and assistant.';
comment on column daily_spend.day is 'The UTC day.';
comment on column daily_spend.source is '''cozmox'' or ''invent''.';
comment on column daily_spend.model is 'The model (NULL: costs with no model, such as voice).';
comment on column daily_spend.assistant_id is 'The assistant.';
comment on column daily_spend.chats is 'Chats with spend that day.';
comment on column daily_spend.input_tokens is 'Input tokens.';
comment on column daily_spend.output_tokens is 'Output tokens.';
comment on column daily_spend.total_tokens is 'Total tokens.';
comment on column daily_spend.reasoning_tokens is 'Reasoning tokens.';
comment on column daily_spend.cached_input_tokens is 'Cached input tokens.';
comment on column daily_spend.cost is 'Cost; NULL where the source reports none.';

create or replace view daily_chats as
select
    created_day as day,
    source,
    status,
    channel,
    count(*) as chats,
    sum(message_count)::bigint as messages,
    avg(message_count) as avg_messages,
    avg(duration_seconds) as avg_duration_seconds
from chat_summary
group by all;

comment on view daily_chats is 'Chats created per UTC day, by source, status and channel.';
comment on column daily_chats.day is 'The UTC day the chats were created.';
comment on column daily_chats.source is '''cozmox'' or ''invent''.';
comment on column daily_chats.status is 'The chat status.';
comment on column daily_chats.channel is 'The contact channel.';
comment on column daily_chats.chats is 'Chats.';
comment on column daily_chats.messages is 'Their messages.';
comment on column daily_chats.avg_messages is 'Messages per chat.';
comment on column daily_chats.avg_duration_seconds is 'Average seconds from first to last message.';

create or replace view token_shares as
select
    source,
    model,
    sum(input_tokens)::bigint as input_tokens,
    sum(cached_input_tokens)::bigint as cached_input_tokens,
    sum(cached_input_tokens)::bigint / nullif(sum(input_tokens)::bigint, 0) as cached_input_share,
    sum(output_tokens)::bigint as output_tokens,
    sum(reasoning_tokens)::bigint as reasoning_tokens,
    sum(reasoning_tokens)::bigint / nullif(sum(output_tokens)::bigint, 0) as reasoning_share
from spend_items
where model is not null
group by all;

comment on view token_shares is 'Per source and model, how much input came from a cache and how much output was reasoning.';
comment on column token_shares.source is '''cozmox'' or ''invent''.';
comment on column token_shares.model is 'The model.';
comment on column token_shares.input_tokens is 'Input tokens.';
comment on column token_shares.cached_input_tokens is 'Of those, served from a cache.';
comment on column token_shares.cached_input_share is 'cached_input_tokens / input_tokens.';
comment on column token_shares.output_tokens is 'Output tokens.';
comment on column token_shares.reasoning_tokens is 'Of those, reasoning.';
comment on column token_shares.reasoning_share is 'reasoning_tokens / output_tokens.';

create or replace view assistant_spend as
select
    rank() over (order by sum(cost) desc nulls last) as spend_rank,
    source,
    assistant_id,
    count(distinct chat_id) as chats,
    sum(total_tokens)::bigint as total_tokens,
    sum(cost) as cost
from spend_items
group by all;

comment on view assistant_spend is 'Assistants ranked by spend.';
comment on column assistant_spend.spend_rank is '1 for the assistant that cost most.';
comment on column assistant_spend.source is '''cozmox'' or ''invent''.';
comment on column assistant_spend.assistant_id is 'The assistant.';
comment on column assistant_spend.chats is 'Its chats with spend.';
comment on column assistant_spend.total_tokens is 'Tokens.';
comment on column assistant_spend.cost is 'Cost; NULL where the source reports none.';

create or replace view model_spend as
select
    rank() over (order by sum(cost) desc nulls last, sum(total_tokens)::bigint desc nulls last) as spend_rank,
    source,
    model,
    count(distinct chat_id) as chats,
    sum(input_tokens)::bigint as input_tokens,
    sum(output_tokens)::bigint as output_tokens,
    sum(total_tokens)::bigint as total_tokens,
    sum(cost) as cost
from spend_items
where model is not null
group by all;

comment on view model_spend is 'Models ranked by spend, then by tokens.';
comment on column model_spend.spend_rank is '1 for the model that cost most.';
comment on column model_spend.source is '''cozmox'' or ''invent''.';
comment on column model_spend.model is 'The model.';
comment on column model_spend.chats is 'Chats that used it.';
comment on column model_spend.input_tokens is 'Input tokens.';
comment on column model_spend.output_tokens is 'Output tokens.';
comment on column model_spend.total_tokens is 'Total tokens.';
comment on column model_spend.cost is 'Cost; NULL where the source reports none.';

create or replace view freshness as
with
runs as (
    select
        source,
        max(finished_at) filter (where status = 'success') as last_success_at,
        max(started_at) as last_run_at,
        arg_max(status, started_at) as last_run_status
    from sync_runs
    where mode <> 'backfill'
    group by all
)
select
    s.source,
    s.watermark,
    now() - s.watermark as watermark_age,
    r.last_success_at,
    r.last_run_at,
    r.last_run_status
from sync_state s
left join runs r using (source)
where s.stream = 'chats';

comment on view freshness is 'Per source, how current the warehouse is.';
comment on column freshness.source is '''cozmox'' or ''invent''.';
comment on column freshness.watermark is 'Everything updated before this is loaded.';
comment on column freshness.watermark_age is 'How long ago that is.';
comment on column freshness.last_success_at is 'When the last successful sync finished.';
comment on column freshness.last_run_at is 'When the last sync started.';
comment on column freshness.last_run_status is 'How it ended.';
