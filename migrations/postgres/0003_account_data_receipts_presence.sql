-- Account data, receipts and presence (issue 3). Each change takes a position from the same
-- stream as events, so one sync token orders them all.

CREATE TABLE account_data (
    user_id          TEXT NOT NULL,
    room_id          TEXT NOT NULL,   -- '' for global account data
    data_type        TEXT NOT NULL,
    content          TEXT NOT NULL,
    stream_ordering  BIGINT NOT NULL,
    PRIMARY KEY (user_id, room_id, data_type)
);
CREATE INDEX account_data_by_stream ON account_data (user_id, stream_ordering);

CREATE TABLE receipts (
    room_id          TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    receipt_type     TEXT NOT NULL,
    thread_id        TEXT NOT NULL,   -- '' for an unthreaded receipt
    event_id         TEXT NOT NULL,
    ts               BIGINT NOT NULL,
    stream_ordering  BIGINT NOT NULL,
    PRIMARY KEY (room_id, user_id, receipt_type, thread_id)
);
CREATE INDEX receipts_by_stream ON receipts (room_id, stream_ordering);

CREATE TABLE presence (
    user_id          TEXT PRIMARY KEY,
    state            TEXT NOT NULL,
    status_msg       TEXT,
    last_active_ts   BIGINT NOT NULL,
    stream_ordering  BIGINT NOT NULL
);
CREATE INDEX presence_by_stream ON presence (stream_ordering);
