-- End-to-end encryption (issue 5): the server keeps clients' public keys verbatim, relays
-- to-device messages and stores encrypted key backups. It never holds anything it could decrypt.

-- A device's identity keys (POST /keys/upload `device_keys`), the signed JSON as uploaded.
CREATE TABLE device_keys (
    user_id     TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    key_json    TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id)
);

-- One-time keys: each handed out by /keys/claim exactly once, then deleted.
CREATE TABLE one_time_keys (
    user_id     TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    algorithm   TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    key_json    TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, algorithm, key_id)
);

-- The fallback key per device and algorithm, handed out when one-time keys run out.
CREATE TABLE fallback_keys (
    user_id     TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    algorithm   TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    key_json    TEXT NOT NULL,
    used        BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, device_id, algorithm)
);

-- Cross-signing keys (master, self_signing, user_signing), as uploaded.
CREATE TABLE cross_signing_keys (
    user_id     TEXT NOT NULL,
    key_type    TEXT NOT NULL,
    key_json    TEXT NOT NULL,
    PRIMARY KEY (user_id, key_type)
);

-- Signatures uploaded through /keys/signatures/upload: `signer` signed the key `target_key_id`
-- (a device id or a cross-signing public key) of `target_user_id`.
CREATE TABLE key_signatures (
    signer_user_id  TEXT NOT NULL,
    signer_key_id   TEXT NOT NULL,
    target_user_id  TEXT NOT NULL,
    target_key_id   TEXT NOT NULL,
    signature       TEXT NOT NULL,
    PRIMARY KEY (signer_user_id, signer_key_id, target_user_id, target_key_id)
);
CREATE INDEX key_signatures_by_target ON key_signatures (target_user_id);

-- Whose devices or keys changed, at which stream position (device_lists in /sync, /keys/changes).
CREATE TABLE device_list_changes (
    stream_ordering  BIGINT NOT NULL,
    user_id          TEXT NOT NULL,
    PRIMARY KEY (stream_ordering, user_id)
);
CREATE INDEX device_list_changes_by_user ON device_list_changes (user_id, stream_ordering);

-- Each device's to-device inbox, deleted once the device syncs past it.
CREATE TABLE to_device_messages (
    stream_ordering  BIGINT NOT NULL,
    seq              BIGINT NOT NULL,
    user_id          TEXT NOT NULL,
    device_id        TEXT NOT NULL,
    sender           TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    content          TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, stream_ordering, seq)
);

-- PUT /sendToDevice idempotency: one delivery per (sender, device, txn id).
CREATE TABLE to_device_transactions (
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    txn_id     TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, txn_id)
);

-- Stream positions that were handed out but whose rows are gone (delivered to-device
-- messages): the start-up position never falls below this, so no position is used twice.
CREATE TABLE stream_floor (
    id        BIGINT PRIMARY KEY,
    position  BIGINT NOT NULL
);
INSERT INTO stream_floor (id, position) VALUES (1, 0);

-- Server-side key backup: versions, and the encrypted room keys in each.
CREATE TABLE key_backup_versions (
    user_id     TEXT NOT NULL,
    version     BIGINT NOT NULL,
    algorithm   TEXT NOT NULL,
    auth_data   TEXT NOT NULL,
    etag        BIGINT NOT NULL DEFAULT 0,
    deleted     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, version)
);

CREATE TABLE key_backup_sessions (
    user_id               TEXT NOT NULL,
    version               BIGINT NOT NULL,
    room_id               TEXT NOT NULL,
    session_id            TEXT NOT NULL,
    first_message_index   BIGINT NOT NULL,
    forwarded_count       BIGINT NOT NULL,
    is_verified           BIGINT NOT NULL,
    session_data          TEXT NOT NULL,
    PRIMARY KEY (user_id, version, room_id, session_id)
);
