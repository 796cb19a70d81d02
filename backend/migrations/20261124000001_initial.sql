-- The original's two tables (users, activities), plus password hashes for local accounts and the direct messages
-- that lived in DynamoDB in the original.

CREATE TABLE users (
    uuid            UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    display_name    TEXT NOT NULL,
    handle          TEXT NOT NULL,
    email           TEXT NOT NULL,
    -- NULL for accounts that sign in elsewhere (a Cognito user pool), which carry cognito_user_id instead.
    password_hash   TEXT,
    cognito_user_id TEXT,
    bio             TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT users_handle_key UNIQUE (handle),
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_cognito_user_id_key UNIQUE (cognito_user_id)
);

CREATE TABLE activities (
    uuid                   UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_uuid              UUID NOT NULL REFERENCES users (uuid) ON DELETE CASCADE,
    message                TEXT NOT NULL,
    replies_count          INTEGER NOT NULL DEFAULT 0,
    reposts_count          INTEGER NOT NULL DEFAULT 0,
    likes_count            INTEGER NOT NULL DEFAULT 0,
    reply_to_activity_uuid UUID REFERENCES activities (uuid) ON DELETE CASCADE,
    -- A reply carries its crud's expiry, so both leave the feeds together.
    expires_at             TIMESTAMPTZ,
    created_at             TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX activities_by_time ON activities (created_at DESC);
CREATE INDEX activities_by_user ON activities (user_uuid, created_at DESC);
CREATE INDEX activities_by_parent ON activities (reply_to_activity_uuid, created_at);

CREATE TABLE message_groups (
    uuid       UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    -- The two members' uuids, sorted and joined: one conversation per pair, even when both start one at once.
    direct_key TEXT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE message_group_members (
    message_group_uuid UUID NOT NULL REFERENCES message_groups (uuid) ON DELETE CASCADE,
    user_uuid          UUID NOT NULL REFERENCES users (uuid) ON DELETE CASCADE,
    PRIMARY KEY (message_group_uuid, user_uuid)
);
CREATE INDEX message_group_members_by_user ON message_group_members (user_uuid);

CREATE TABLE messages (
    uuid               UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    message_group_uuid UUID NOT NULL REFERENCES message_groups (uuid) ON DELETE CASCADE,
    user_uuid          UUID NOT NULL REFERENCES users (uuid) ON DELETE CASCADE,
    message            TEXT NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX messages_by_group ON messages (message_group_uuid, created_at);
