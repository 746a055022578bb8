-- Accounts, devices, tokens and third-party identifiers (issue 2).
-- Timestamps are milliseconds since the Unix epoch; booleans are 0/1 integers on both backends.

CREATE TABLE users (
    user_id        TEXT PRIMARY KEY,
    password_hash  TEXT,
    displayname    TEXT,
    avatar_url     TEXT,
    is_admin       BIGINT NOT NULL DEFAULT 0,
    deactivated    BIGINT NOT NULL DEFAULT 0,
    created_ts     BIGINT NOT NULL
);

CREATE TABLE devices (
    user_id       TEXT NOT NULL REFERENCES users (user_id),
    device_id     TEXT NOT NULL,
    display_name  TEXT,
    last_seen_ip  TEXT,
    last_seen_ts  BIGINT,
    created_ts    BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_id)
);

-- Tokens are stored as SHA-256 hashes: a copy of this table logs nobody in.
CREATE TABLE access_tokens (
    token_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    expires_ts  BIGINT,
    created_ts  BIGINT NOT NULL
);
CREATE INDEX access_tokens_by_device ON access_tokens (user_id, device_id);

CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    created_ts  BIGINT NOT NULL
);
CREATE INDEX refresh_tokens_by_device ON refresh_tokens (user_id, device_id);

CREATE TABLE user_threepids (
    medium        TEXT NOT NULL,
    address       TEXT NOT NULL,
    user_id       TEXT NOT NULL REFERENCES users (user_id),
    validated_ts  BIGINT,
    added_ts      BIGINT NOT NULL,
    PRIMARY KEY (medium, address)
);
CREATE INDEX user_threepids_by_user ON user_threepids (user_id);
