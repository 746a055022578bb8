-- Rooms, their events and state (issue 3).

CREATE TABLE rooms (
    room_id       TEXT PRIMARY KEY,
    room_version  TEXT NOT NULL,
    creator       TEXT NOT NULL,
    created_ts    BIGINT NOT NULL
);

-- Every event the server holds, in the one global order /sync and /messages read. The stream
-- position is assigned by the event writer and is dense and increasing.
CREATE TABLE events (
    stream_ordering   BIGINT PRIMARY KEY,
    event_id          TEXT NOT NULL UNIQUE,
    room_id           TEXT NOT NULL,
    sender            TEXT NOT NULL,
    event_type        TEXT NOT NULL,
    state_key         TEXT,
    depth             BIGINT NOT NULL,
    origin_server_ts  BIGINT NOT NULL,
    json              TEXT NOT NULL,
    redacted_because  TEXT
);
CREATE INDEX events_by_room ON events (room_id, stream_ordering);

-- Room state over time: a row is the state entry (type, state_key) -> event from stream position
-- `from_stream` until `to_stream` (exclusive; NULL while current). The state at position P is
-- every row with from_stream <= P < to_stream.
CREATE TABLE room_state (
    room_id      TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    state_key    TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    from_stream  BIGINT NOT NULL,
    to_stream    BIGINT
);
CREATE INDEX room_state_by_key ON room_state (room_id, event_type, state_key, from_stream);
CREATE INDEX room_state_current ON room_state (room_id, to_stream);

-- Each user's current membership of each room (derived from room_state in the same transaction),
-- for "which rooms is this user in" without scanning state.
CREATE TABLE room_memberships (
    room_id          TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    membership       TEXT NOT NULL,
    event_id         TEXT NOT NULL,
    stream_ordering  BIGINT NOT NULL,
    forgotten        BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX room_memberships_by_user ON room_memberships (user_id, membership);

-- The events with no children yet: the next local event's prev_events.
CREATE TABLE forward_extremities (
    room_id   TEXT NOT NULL,
    event_id  TEXT NOT NULL,
    PRIMARY KEY (room_id, event_id)
);

-- PUT /send idempotency: one event per (user, device, txn id).
CREATE TABLE event_transactions (
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    txn_id     TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, txn_id)
);

CREATE TABLE room_aliases (
    alias    TEXT PRIMARY KEY,
    room_id  TEXT NOT NULL,
    creator  TEXT NOT NULL
);
CREATE INDEX room_aliases_by_room ON room_aliases (room_id);

-- Sync filters uploaded with POST /user/{userId}/filter.
CREATE TABLE filters (
    user_id    TEXT NOT NULL,
    filter_id  BIGINT NOT NULL,
    json       TEXT NOT NULL,
    PRIMARY KEY (user_id, filter_id)
);
CREATE INDEX event_transactions_by_event ON event_transactions (event_id);
