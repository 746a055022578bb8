-- Full-text search over message bodies, room names and topics (issue 3). PostgreSQL: a
-- tsvector per event with a GIN index. The SQLite migration of the same name uses FTS5.
CREATE TABLE event_search (
    event_id         TEXT PRIMARY KEY,
    room_id          TEXT NOT NULL,
    search_key       TEXT NOT NULL,
    stream_ordering  BIGINT NOT NULL,
    vector           TSVECTOR NOT NULL
);
CREATE INDEX event_search_vector ON event_search USING GIN (vector);
CREATE INDEX event_search_room ON event_search (room_id, stream_ordering);
