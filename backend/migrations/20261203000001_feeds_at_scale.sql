-- Every feed answers from an index range, whatever the size of the tables:
-- - each feed's index ends in (created_at, uuid), the order it lists in and the key of its `before` cursor, so a page
--   is one index range read newest (or oldest) first, stopped at the page size;
-- - notifications have their own column and index (`notified_user_uuid`: whose crud a reply answers, when the replier
--   is someone else), instead of a join from every reply to its crud;
-- - a profile's count of cruds is kept on the user (`cruds_count`) by statement triggers, instead of counted per view;
-- - search has a trigram index (pg_trgm), which serves `ILIKE '%term%'` without reading every message;
-- - expired activities are deleted by the backend's sweep (index on expires_at), so feeds skip few of them.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

DROP INDEX activities_by_time;
DROP INDEX activities_by_user;
DROP INDEX activities_by_parent;
CREATE INDEX activities_by_time ON activities (created_at, uuid);
CREATE INDEX activities_by_user ON activities (user_uuid, created_at, uuid);
CREATE INDEX activities_by_parent ON activities (reply_to_activity_uuid, created_at, uuid);
CREATE INDEX activities_by_expiry ON activities (expires_at);
CREATE INDEX activities_message_trigrams ON activities USING gin (message gin_trgm_ops);

ALTER TABLE activities ADD COLUMN notified_user_uuid UUID REFERENCES users (uuid) ON DELETE CASCADE;
UPDATE activities reply SET notified_user_uuid = crud.user_uuid
FROM activities crud
WHERE reply.reply_to_activity_uuid = crud.uuid AND crud.user_uuid <> reply.user_uuid;
CREATE INDEX activities_by_notified_user ON activities (notified_user_uuid, created_at, uuid)
    WHERE notified_user_uuid IS NOT NULL;

DROP INDEX messages_by_group;
CREATE INDEX messages_by_group ON messages (message_group_uuid, created_at, uuid);

-- Every activity of the user, expired or not: the sweep deletes expired ones, and a profile subtracts the few that
-- expired since (found through activities_by_expiry).
ALTER TABLE users ADD COLUMN cruds_count BIGINT NOT NULL DEFAULT 0;
UPDATE users SET cruds_count = (SELECT count(*) FROM activities a WHERE a.user_uuid = users.uuid);

CREATE FUNCTION count_inserted_activities() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE users SET cruds_count = cruds_count + added.n
    FROM (SELECT user_uuid, count(*) AS n FROM inserted GROUP BY user_uuid) added
    WHERE users.uuid = added.user_uuid;
    RETURN NULL;
END
$$;

CREATE FUNCTION count_deleted_activities() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE users SET cruds_count = cruds_count - removed.n
    FROM (SELECT user_uuid, count(*) AS n FROM deleted GROUP BY user_uuid) removed
    WHERE users.uuid = removed.user_uuid;
    RETURN NULL;
END
$$;

CREATE TRIGGER activities_counted_on_insert AFTER INSERT ON activities
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION count_inserted_activities();
CREATE TRIGGER activities_counted_on_delete AFTER DELETE ON activities
    REFERENCING OLD TABLE AS deleted FOR EACH STATEMENT EXECUTE FUNCTION count_deleted_activities();
