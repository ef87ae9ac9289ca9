-- Files carried by message parts (Invent: audio and attachments), one row per part that has one.
create table if not exists message_files (
    source              varchar not null,
    message_id          varchar not null,
    chat_id             varchar not null,
    part_seq            integer not null,     -- position among the message's parts
    part_type           varchar,
    file_id             varchar,
    file_name           varchar,
    file_size           bigint,
    mime_type           varchar,
    file_url            varchar,
    start_ms            double,               -- when the part started and finished processing
    end_ms              double,
    primary key (source, message_id, part_seq)
);
