-- Per organisation and model, how much input came from a cache and how much output was reasoning.

create or replace view token_shares as
with
items as (
    select * from spend_items
    where model is not null
),
final as (
    select
        source,
        org_id,
        model,
        sum(input_tokens)::bigint as input_tokens,
        sum(cached_input_tokens)::bigint as cached_input_tokens,
        sum(cached_input_tokens)::bigint / nullif(sum(input_tokens)::bigint, 0) as cached_input_share,
        sum(output_tokens)::bigint as output_tokens,
        sum(reasoning_tokens)::bigint as reasoning_tokens,
        sum(reasoning_tokens)::bigint / nullif(sum(output_tokens)::bigint, 0) as reasoning_share
    from items
    group by all
)
select * from final;

comment on view token_shares is 'Per source, organisation and model, how much input came from a cache and how much output was reasoning.';
comment on column token_shares.source is '''cozmox'' or ''invent''.';
comment on column token_shares.org_id is 'The organisation.';
comment on column token_shares.model is 'The model.';
comment on column token_shares.input_tokens is 'Input tokens.';
comment on column token_shares.cached_input_tokens is 'Of those, served from a cache (Cozmox cachedPromptTokens, Invent cached_input_tokens or input_tokens_cache_read); an item that says nothing counts as none.';
comment on column token_shares.cached_input_share is 'cached_input_tokens / input_tokens.';
comment on column token_shares.output_tokens is 'Output tokens.';
comment on column token_shares.reasoning_tokens is 'Of those, reasoning (Cozmox reasoningTokens, Invent reasoning_tokens); an item that says nothing counts as none.';
comment on column token_shares.reasoning_share is 'reasoning_tokens / output_tokens.';
