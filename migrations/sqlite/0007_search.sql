-- Full-text search over message bodies, room names and topics (issue 3). SQLite: FTS5 with
-- bm25 ranking. The PostgreSQL migration of the same name uses a tsvector with a GIN index.
CREATE VIRTUAL TABLE event_search USING fts5(
    event_id UNINDEXED,
    room_id UNINDEXED,
    search_key UNINDEXED,
    stream_ordering UNINDEXED,
    body,
    tokenize = 'unicode61 remove_diacritics 2'
);
