-- Event relations (replies are not relations; edits, reactions, threads and references are),
-- written with the event so aggregations and /relations read one indexed table.

CREATE TABLE event_relations (
    event_id         TEXT PRIMARY KEY,
    room_id          TEXT NOT NULL,
    relates_to       TEXT NOT NULL,
    rel_type         TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    sender           TEXT NOT NULL,
    aggregation_key  TEXT,
    stream_ordering  BIGINT NOT NULL
);
CREATE INDEX event_relations_by_parent ON event_relations (relates_to, rel_type, stream_ordering);
CREATE INDEX event_relations_by_room ON event_relations (room_id, rel_type, stream_ordering);
