-- The warehouse tables of CONTRACT.md. Timestamps are TIMESTAMPTZ in UTC; `raw` keeps the
-- record exactly as the API sent it, so nothing the flattening leaves out is lost.

create table if not exists chats (
    source              varchar not null,
    chat_id             varchar not null,
    org_id              varchar,
    assistant_id        varchar,
    title               varchar,
    status              varchar,
    created_at          timestamptz,
    updated_at          timestamptz not null,
    cost                double,
    deleted_at          timestamptz,
    -- Cozmox: the session, the chat it continues, and what the embedded assistant runs on.
    session_id          varchar,
    previous_chat_id    varchar,
    assistant_model_provider varchar,
    assistant_model     varchar,
    assistant_voice_provider varchar,
    assistant_voice_id  varchar,
    assistant_transcriber_provider varchar,
    -- Invent: the chat's model, flags and inbox state.
    model               varchar,
    visibility          varchar,
    is_pinned           boolean,
    is_temporary        boolean,
    inbox_state         varchar,
    integration_id      varchar,
    is_ai_enabled       boolean,
    assigned_user_id    varchar,
    assigned_user_name  varchar,
    assigned_at         timestamptz,
    -- When chatsync last wrote the row.
    loaded_at           timestamptz not null,
    raw                 json,
    primary key (source, chat_id)
);

create table if not exists messages (
    source              varchar not null,
    message_id          varchar not null,
    chat_id             varchar not null,
    kind                varchar not null,     -- message | output | input
    seq                 integer not null,     -- position in its list (Invent: in the chat)
    role                varchar,
    content             varchar,
    created_at          timestamptz,
    seconds_from_start  double,
    model               varchar,
    status              varchar,
    primary key (source, message_id)
);

create table if not exists usage (
    source              varchar not null,
    message_id          varchar not null,
    chat_id             varchar not null,
    created_at          timestamptz,
    model               varchar,
    input_tokens        bigint,
    output_tokens       bigint,
    total_tokens        bigint,
    reasoning_tokens    bigint,
    cached_input_tokens bigint,
    cache_read_tokens   bigint,
    cache_write_tokens  bigint,
    primary key (source, message_id)
);

create table if not exists costs (
    source              varchar not null,
    chat_id             varchar not null,
    seq                 integer not null,
    type                varchar,
    model               varchar,
    provider            varchar,
    prompt_tokens       bigint,
    completion_tokens   bigint,
    cost                double,
    raw                 json,                 -- other cost types carry other fields
    primary key (source, chat_id, seq)
);

create table if not exists chat_members (
    source              varchar not null,
    chat_id             varchar not null,
    member_id           varchar not null,
    role                varchar,
    user_id             varchar,
    user_name           varchar,
    channel_type        varchar,
    channel_id          varchar,
    contact_id          varchar,
    contact_name        varchar,
    primary key (source, chat_id, member_id)
);

create table if not exists sync_state (
    source              varchar not null,
    stream              varchar not null,
    watermark           timestamptz,
    updated_at          timestamptz not null,
    primary key (source, stream)
);

create table if not exists sync_runs (
    run_id              varchar primary key,
    source              varchar not null,
    mode                varchar not null,     -- incremental | full_refresh | backfill
    started_at          timestamptz not null,
    finished_at         timestamptz,
    status              varchar not null,     -- running | success | failed | interrupted
    chats_fetched       bigint default 0,
    chats_upserted      bigint default 0,
    messages_upserted   bigint default 0,
    rejected            bigint default 0,
    requests            bigint default 0,
    retries             bigint default 0,
    window_start        timestamptz,
    window_end          timestamptz,
    error               varchar
);

create table if not exists rejected_records (
    source              varchar not null,
    stream              varchar not null,
    record_key          varchar not null,
    received_at         timestamptz not null,
    run_id              varchar,
    error               varchar not null,
    raw                 json,
    primary key (source, stream, record_key, received_at)
);
