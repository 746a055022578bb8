-- Push results by exception (issue 3, rooms of 10,000): one row per event holds the result
-- shared by every joined member whose rules and mentions do not set them apart;
-- `event_push_actions` keeps only the members whose result differs (notifying or not).
CREATE TABLE event_push_summary (
    event_id         TEXT PRIMARY KEY,
    room_id          TEXT NOT NULL,
    sender           TEXT NOT NULL,
    stream_ordering  BIGINT NOT NULL,
    actions          TEXT NOT NULL,
    highlight        BIGINT NOT NULL
);
CREATE INDEX event_push_summary_by_room ON event_push_summary (room_id, stream_ordering);
CREATE INDEX event_push_actions_by_event ON event_push_actions (event_id, user_id);

-- When each member last became joined: a profile change re-sends `join` without moving it.
ALTER TABLE room_memberships ADD COLUMN joined_stream BIGINT NOT NULL DEFAULT 0;
UPDATE room_memberships SET joined_stream = stream_ordering WHERE membership = 'join';
