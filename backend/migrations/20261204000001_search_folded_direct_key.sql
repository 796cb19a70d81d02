-- Search matches a lowercased copy of each message that Postgres keeps with the row: `LIKE` on it is the
-- case-insensitive match `ILIKE` makes, whose lowercasing of every message read was the larger part of a search's
-- cost. The trigram index serves the folded copy (pg_trgm's trigrams are lowercase either way).
ALTER TABLE activities ADD COLUMN message_folded TEXT NOT NULL GENERATED ALWAYS AS (lower(message)) STORED;
DROP INDEX activities_message_trigrams;
CREATE INDEX activities_message_trigrams ON activities USING gin (message_folded gin_trgm_ops);

-- The key of the direct conversation between two people (`message_groups.direct_key`): both uuids, the lower first.
-- One definition for every query that finds or creates a pair's conversation.
CREATE FUNCTION direct_key(one UUID, other UUID) RETURNS TEXT
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN least(one, other)::text || ':' || greatest(one, other)::text;
