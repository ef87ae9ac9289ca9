-- What today's record shapes carry beside the seeds': Cozmox squads, OpenAI-style message
-- entries (tool calls and the answers to them) and cache and reasoning tokens in costs; Invent
-- contact channels in their newer shape, broadcast messages, and each message as it was sent.
-- Rows loaded before this file have NULL here until their chat is loaded again
-- (`chatsync sync --full-refresh` reloads every chat).

alter table chats add column if not exists squad_id varchar;

alter table messages add column if not exists tool_calls json;
alter table messages add column if not exists tool_call_id varchar;
alter table messages add column if not exists name varchar;
alter table messages add column if not exists broadcast_id varchar;
alter table messages add column if not exists is_broadcast boolean;
alter table messages add column if not exists raw json;

alter table costs add column if not exists cached_prompt_tokens bigint;
alter table costs add column if not exists reasoning_tokens bigint;

alter table chat_members add column if not exists channel_name varchar;
alter table chat_members add column if not exists channel_display_name varchar;
alter table chat_members add column if not exists channel_email varchar;
alter table chat_members add column if not exists channel_phone varchar;
alter table chat_members add column if not exists contact_is_admin boolean;

comment on column chats.squad_id is 'Cozmox: the squad that ran the chat (squadId); such a chat often has no assistant_id.';

comment on column messages.content is 'The text. Cozmox: the entry''s message, else its content (structured content as JSON text); Invent: the text of its text parts, joined by newlines.';
comment on column messages.tool_calls is 'Cozmox, OpenAI-style entries: the tools the assistant called, as sent (JSON: [{id, type, function: {name, arguments}}], arguments a JSON string).';
comment on column messages.tool_call_id is 'Cozmox, a tool entry (role tool): the id of the tool call it answers.';
comment on column messages.name is 'Cozmox: the entry''s name (the speaker''s or the tool''s), where it has one.';
comment on column messages.broadcast_id is 'Invent: the broadcast the message was sent in.';
comment on column messages.is_broadcast is 'Invent: whether the message was sent as a broadcast (is_broadcast_message).';
comment on column messages.raw is 'Invent: the message exactly as the API sent it (JSON); NULL for Cozmox, whose entries are in the chat''s raw.';

comment on column usage.reasoning_tokens is 'Reasoning tokens (part of the output). Cozmox: reasoningTokens of the cost entry.';
comment on column usage.cached_input_tokens is 'Input tokens served from a cache. Cozmox: cachedPromptTokens; Invent: cached_input_tokens, else input_tokens_cache_read.';

comment on column costs.cached_prompt_tokens is 'cachedPromptTokens: of the prompt tokens, those served from a cache.';
comment on column costs.reasoning_tokens is 'reasoningTokens: of the completion tokens, those spent reasoning.';

comment on column chat_members.channel_type is 'The contact channel (channel_type, or type in the newer shape): internal, whatsapp_bot, instagram_dm, slack_bot, telegram_bot, gmail, messenger_bot, email, ...';
comment on column chat_members.channel_id is 'The contact''s id on that channel (channel_id, or user_id in the newer shape): a phone number, a handle.';
comment on column chat_members.channel_name is 'The contact''s handle on the channel (channel_name, or username in the newer shape).';
comment on column chat_members.channel_display_name is 'The contact''s name as the channel shows it (channel_display_name, or name in the newer shape).';
comment on column chat_members.channel_email is 'The contact''s email on the channel (newer shape only).';
comment on column chat_members.channel_phone is 'The contact''s phone number on the channel (newer shape only).';
comment on column chat_members.contact_is_admin is 'Whether the contact is an admin (newer shape only).';
