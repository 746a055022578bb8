-- A client's transaction ids are scoped to the endpoint they were sent to (Synapse keys them by
-- the request path): txn "1" sent to two rooms, or as two event types, is two events. The scope
-- is "<room id> <event type>"; existing rows get theirs from their event.
CREATE TABLE event_transactions_scoped (
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    scope      TEXT NOT NULL,
    txn_id     TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, scope, txn_id)
);
INSERT INTO event_transactions_scoped (user_id, device_id, scope, txn_id, event_id)
    SELECT t.user_id, t.device_id, COALESCE(e.room_id || ' ' || e.event_type, ''), t.txn_id, t.event_id
    FROM event_transactions t LEFT JOIN events e ON e.event_id = t.event_id;
DROP TABLE event_transactions;
ALTER TABLE event_transactions_scoped RENAME TO event_transactions;
CREATE INDEX event_transactions_by_event ON event_transactions (event_id);
