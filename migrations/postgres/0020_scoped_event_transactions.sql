-- A client's transaction ids are scoped to the endpoint they were sent to (Synapse keys them by
-- the request path): txn "1" sent to two rooms, or as two event types, is two events. The scope
-- is "<room id> <event type>"; existing rows get theirs from their event.
ALTER TABLE event_transactions ADD COLUMN scope TEXT NOT NULL DEFAULT '';
UPDATE event_transactions t SET scope = e.room_id || ' ' || e.event_type FROM events e WHERE e.event_id = t.event_id;
ALTER TABLE event_transactions DROP CONSTRAINT event_transactions_pkey;
ALTER TABLE event_transactions ADD PRIMARY KEY (user_id, device_id, scope, txn_id);
ALTER TABLE event_transactions ALTER COLUMN scope DROP DEFAULT;
