-- Chats created per UTC day, by organisation, status and channel.

create or replace view daily_chats as
with
chat_summaries as (
    select * from chat_summary
),
final as (
    select
        created_day as day,
        source,
        org_id,
        status,
        channel,
        count(*) as chats,
        sum(message_count)::bigint as messages,
        avg(message_count) as avg_messages,
        avg(duration_seconds) as avg_duration_seconds
    from chat_summaries
    group by all
)
select * from final;

comment on view daily_chats is 'Chats created per UTC day, by source, organisation, status and channel.';
comment on column daily_chats.day is 'The UTC day the chats were created.';
comment on column daily_chats.source is '''cozmox'' or ''invent''.';
comment on column daily_chats.org_id is 'The organisation.';
comment on column daily_chats.status is 'The chat status.';
comment on column daily_chats.channel is 'The contact channel.';
comment on column daily_chats.chats is 'Chats.';
comment on column daily_chats.messages is 'Their messages.';
comment on column daily_chats.avg_messages is 'Messages per chat.';
comment on column daily_chats.avg_duration_seconds is 'Average seconds from first to last message.';
