-- EDUs that must not be lost (to-device messages such as room keys, device list changes) wait
-- here for their destination like events do in federation_outbox; deleted once the destination
-- acknowledged the transaction that carried them. Typing, receipts and presence stay in memory.
CREATE TABLE federation_edu_outbox (
    id           BIGSERIAL PRIMARY KEY,
    destination  TEXT NOT NULL,
    edu          TEXT NOT NULL
);
CREATE INDEX federation_edu_outbox_by_destination ON federation_edu_outbox (destination, id);
