-- Push rules evaluation results, pushers, and member display names for push rules (issue 3).

-- What each new event means for each member: written with the event, in its transaction.
CREATE TABLE event_push_actions (
    user_id          TEXT NOT NULL,
    room_id          TEXT NOT NULL,
    event_id         TEXT NOT NULL,
    stream_ordering  BIGINT NOT NULL,
    actions          TEXT NOT NULL,
    notify           BIGINT NOT NULL,
    highlight        BIGINT NOT NULL,
    PRIMARY KEY (user_id, event_id)
);
CREATE INDEX event_push_actions_by_room ON event_push_actions (user_id, room_id, stream_ordering);
CREATE INDEX event_push_actions_by_stream ON event_push_actions (user_id, stream_ordering);

CREATE TABLE pushers (
    user_id              TEXT NOT NULL,
    app_id               TEXT NOT NULL,
    pushkey              TEXT NOT NULL,
    kind                 TEXT NOT NULL,
    app_display_name     TEXT NOT NULL,
    device_display_name  TEXT NOT NULL,
    profile_tag          TEXT,
    lang                 TEXT NOT NULL,
    data                 TEXT NOT NULL,
    created_ts           BIGINT NOT NULL,
    PRIMARY KEY (user_id, app_id, pushkey)
);

ALTER TABLE room_memberships ADD COLUMN displayname TEXT;
