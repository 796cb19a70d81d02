-- Bulk-loads a large Cruddur among the users already there, for the query-plan test and `cargo xtask bench-api
-- --cruds N`. Set `cruddur.bulk_cruds` first (`SET cruddur.bulk_cruds = 1000000;`). It adds:
-- - that many cruds, spread evenly over the users, one a second going back from an hour ago, none expired; their
--   uuids are derived from their number (md5('crud' || n)), so replies can name them;
-- - a reply to every third crud, by the next user (a notification for the crud's author);
-- - a conversation between each pair of users, and a message for every fifth crud (at least a page, 40, in each of
--   the first 1,000 conversations, those of the first users: whichever of them a reader opens holds a full page at
--   every size, while hundreds of users do not make millions of messages);
-- - the needle: the oldest crud, the only one that says "haystackneedle" (a search's worst case);
-- then ANALYZE, so the planner knows the sizes.

CREATE TEMP TABLE bulk_users AS
SELECT array_agg(uuid ORDER BY created_at, uuid) AS ids FROM users;

-- Words from the app's own subject, so messages share trigrams as real text does.
CREATE TEMP TABLE bulk_words AS
SELECT ARRAY['tracing', 'postgres', 'rust', 'x-ray', 'honeycomb', 'spans', 'latency', 'indexes', 'feeds', 'cruds',
             'cloud', 'sqlx', 'axum', 'leptos', 'browser', 'daemon', 'sampling'] AS words;

INSERT INTO activities (uuid, user_uuid, message, replies_count, created_at, expires_at)
SELECT md5('crud' || n)::uuid,
       ids[1 + n % cardinality(ids)],
       'crud ' || n || ': ' || words[1 + n % 17] || ' meets ' || words[1 + (n / 17) % 17] || ', ' || words[1 + (n / 289) % 17],
       CASE WHEN n % 3 = 0 THEN 1 ELSE 0 END,
       now() - interval '1 hour' - n * interval '1 second',
       now() + interval '3650 days'
FROM bulk_users, bulk_words, generate_series(1, current_setting('cruddur.bulk_cruds')::int) n;

INSERT INTO activities (user_uuid, message, created_at, expires_at)
SELECT ids[1], 'the one crud with the haystackneedle in it',
       now() - interval '1 hour' - (current_setting('cruddur.bulk_cruds')::int + 1) * interval '1 second',
       now() + interval '3650 days'
FROM bulk_users;

INSERT INTO activities (user_uuid, message, reply_to_activity_uuid, notified_user_uuid, created_at, expires_at)
SELECT ids[1 + (n + 1) % cardinality(ids)],
       'reply to crud ' || n,
       md5('crud' || n)::uuid,
       NULLIF(ids[1 + n % cardinality(ids)], ids[1 + (n + 1) % cardinality(ids)]),
       now() - interval '1 hour' - n * interval '1 second' + interval '500 milliseconds',
       now() + interval '3650 days'
FROM bulk_users, generate_series(3, current_setting('cruddur.bulk_cruds')::int, 3) n;

CREATE TEMP TABLE bulk_pairs AS
SELECT row_number() OVER (ORDER BY i, j) AS i, ids[i] AS one, ids[j] AS other, direct_key(ids[i], ids[j]) AS key
FROM bulk_users, generate_series(1, cardinality(ids)) i, generate_series(i + 1, cardinality(ids)) j;

INSERT INTO message_groups (direct_key)
SELECT key FROM bulk_pairs
ON CONFLICT (direct_key) DO NOTHING;

INSERT INTO message_group_members (message_group_uuid, user_uuid)
SELECT g.uuid, member
FROM bulk_pairs p JOIN message_groups g ON g.direct_key = p.key, unnest(ARRAY[p.one, p.other]) member
ON CONFLICT DO NOTHING;

INSERT INTO messages (message_group_uuid, user_uuid, message, created_at)
SELECT g.uuid, CASE WHEN m % 2 = 0 THEN p.one ELSE p.other END, 'message ' || m || ' about ' || words[1 + m % 17],
       now() - interval '1 hour' - m * interval '1 second'
FROM bulk_words,
     generate_series(1, greatest(current_setting('cruddur.bulk_cruds')::int / 5,
                                 40 * (SELECT least(count(*), 1000) FROM bulk_pairs))) m
JOIN bulk_pairs p ON p.i = 1 + m % (SELECT least(count(*), 1000) FROM bulk_pairs)
JOIN message_groups g ON g.direct_key = p.key;

DROP TABLE bulk_users, bulk_words, bulk_pairs;

ANALYZE;
