-- The public room directory, reports, and lookups by timestamp (issue 3).

CREATE TABLE public_rooms (
    room_id  TEXT PRIMARY KEY
);

CREATE TABLE reports (
    report_id  BIGINT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    room_id    TEXT NOT NULL,
    event_id   TEXT,
    reason     TEXT,
    score      BIGINT,
    ts         BIGINT NOT NULL
);

CREATE INDEX events_by_room_time ON events (room_id, origin_server_ts);
