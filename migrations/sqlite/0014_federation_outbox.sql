-- The durable federation queue (ARCHITECTURE.md): one row per event and remote server that must
-- receive it, written in the event's own transaction, deleted once the server acknowledged the
-- transaction that carried it. A crash between the two re-sends (receivers de-duplicate by
-- event id); nothing accepted is ever dropped.
CREATE TABLE federation_outbox (
    destination      TEXT NOT NULL,
    stream_ordering  BIGINT NOT NULL,
    event_id         TEXT NOT NULL,
    PRIMARY KEY (destination, stream_ordering)
);
