-- A hash of the child rows a chat was last loaded with: a chat read again with the same
-- messages, usage, costs, members and files keeps its child rows instead of rewriting them.
alter table chats add column if not exists children_fingerprint varchar;

comment on column chats.children_fingerprint is 'A hash of the child rows (messages, usage, costs, members, files) the chat was last loaded with; equal on a later read, they are not rewritten.';
