//! Every feed's query, one per feed so each answers from its own index range, newest first, one page at a time.
//!
//! All activity feeds list the same row ([`Activity`]) through [`activity_page!`], which holds the SELECT list, the
//! join, the expiry rule and the cursor once, so the feeds cannot drift apart while each stays a compile-checked
//! `query_as!`. A page is keyed by `(created_at, uuid)`: `before` names the last item of the previous page (or is
//! `None` for the first), and every feed's index ends in those two columns, so a page is one index range read
//! backwards and stopped at [`PAGE_SIZE`], at ten rows or ten million. A cursor that names nothing (an activity
//! deleted since, say) answers an empty page.
//!
//! Expired activities are skipped by the filter and deleted by [`crate::db::sweep_expired`], so the few a feed
//! skips are only those expired since the last sweep.
//!
//! A conversation's messages share their row and cursor through [`message_page!`] in the same way, the conversation
//! named by a scalar subquery (membership, or the pair's `direct_key`), so a page is one statement.
//!
//! Each function returns the query unexecuted (but [`search`], which runs [`search_query`] on the search pool), so
//! the plan test below can `EXPLAIN` the very statement it runs.

use cruddur_api::{Activity, Message, MessageGroup, PAGE_SIZE, Profile};
use sqlx::PgPool;
use uuid::Uuid;

/// [`PAGE_SIZE`] as the queries bind it.
const LIMIT: i64 = PAGE_SIZE as i64;

/// The type of a compile-checked query of `$row`s, ready to run.
macro_rules! query_of {
    ($row:ty) => {
        sqlx::query::Map<
            'static,
            sqlx::Postgres,
            impl FnMut(sqlx::postgres::PgRow) -> Result<$row, sqlx::Error> + Send,
            sqlx::postgres::PgArguments,
        >
    };
}

/// `sqlx::query_as!(Activity, ...)` of the activities matching `$condition` (its parameters numbered from `$3`),
/// newest first, at most `$limit` of them (`$1`), older than the activity `$before` (`$2`, the cursor).
macro_rules! activity_page {
    ($condition:literal, $limit:expr, $before:expr $(, $arg:expr)* $(,)?) => {
        activity_page!(ordered_first_by: "", $condition, $limit, $before $(, $arg)*)
    };
    // `$first` (a column and direction, then a comma) leads the order: see [`by_user`].
    (ordered_first_by: $first:literal, $condition:literal, $limit:expr, $before:expr $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            Activity,
            "SELECT a.uuid, u.display_name, u.handle, a.message, a.replies_count, a.reposts_count, a.likes_count,
                    a.expires_at, a.created_at, a.reply_to_activity_uuid
             FROM activities a
             JOIN users u ON u.uuid = a.user_uuid
             WHERE (a.expires_at IS NULL OR a.expires_at > now())
               AND (a.created_at, a.uuid) < (
                   CASE WHEN $2::uuid IS NULL THEN 'infinity'
                        ELSE (SELECT cursor.created_at FROM activities cursor WHERE cursor.uuid = $2) END,
                   COALESCE($2, 'ffffffff-ffff-ffff-ffff-ffffffffffff'))
               AND " + $condition + "
             ORDER BY " + $first + " a.created_at DESC, a.uuid DESC
             LIMIT $1",
            $limit,
            $before
            $(, $arg)*
        )
    };
}

/// Everyone's cruds and replies.
pub(crate) fn home(before: Option<Uuid>) -> query_of!(Activity) {
    activity_page!("TRUE", LIMIT, before)
}

/// One user's cruds and replies.
///
/// The user is a range of one value and leads the order, so that only `activities_by_user` gives the page in order:
/// with `user_uuid = $3`, the order by user is dropped as settled, and where a few users own the table (each a large
/// share of it, as on a new Cruddur) the generic plan walks everyone's newest-first index and skips other users'
/// rows, which reads the whole table for a user with few cruds (seconds, on a million).
pub(crate) fn by_user(user: Uuid, before: Option<Uuid>) -> query_of!(Activity) {
    activity_page!(ordered_first_by: "a.user_uuid DESC,", "a.user_uuid >= $3 AND a.user_uuid <= $3", LIMIT, before, user)
}

/// Replies to `user`'s cruds by others (`notified_user_uuid`, set when a reply is posted).
pub(crate) fn notifications(user: Uuid, before: Option<Uuid>) -> query_of!(Activity) {
    activity_page!("a.notified_user_uuid = $3", LIMIT, before, user)
}

/// The replies to `crud`, newest first (a thread lists a page [`chronologically`]).
pub(crate) fn replies(crud: Uuid, before: Option<Uuid>) -> query_of!(Activity) {
    activity_page!("a.reply_to_activity_uuid = $3", LIMIT, before, crud)
}

/// One activity that has not expired.
pub(crate) fn activity(uuid: Uuid) -> query_of!(Activity) {
    activity_page!("a.uuid = $3", 1_i64, None::<Uuid>, uuid)
}

/// Activities whose message contains `term`, case-insensitively and literally (`%` and `_` are not wildcards), as
/// [`search`] runs it: `message_folded` is the message lowercased when written (the migration says why), so the
/// pattern is lowercased the same way, once.
fn search_query(term: &str, before: Option<Uuid>) -> query_of!(Activity) {
    let pattern = format!("%{}%", escape_like(term));
    activity_page!("a.message_folded LIKE lower($3)", LIMIT, before, pattern)
}

/// [`search_query`] on `search_db`, whose connections plan each statement for its own arguments
/// ([`crate::db::Plans::PerExecution`]): the trigram index serves a rare term, the newest-first index a common one,
/// and which is cheaper depends on the term, where a generic plan would pick one of the two for every term.
pub(crate) async fn search(search_db: &PgPool, term: &str, before: Option<Uuid>) -> Result<Vec<Activity>, sqlx::Error> {
    search_query(term, before).fetch_all(search_db).await
}

/// `sqlx::query_as!(Message, ...)` of the messages of the conversation `$group` names (a scalar subquery of
/// `$3`, `$4`: no rows, or `NULL`, for no conversation), newest first, at most a page, older than the message
/// `$before` (`$2`, the cursor). The conversation is found once, before its index range is read.
macro_rules! message_page {
    ($group:literal, $before:expr, $third:expr, $fourth:expr) => {
        sqlx::query_as!(
            Message,
            "SELECT m.uuid, u.display_name, u.handle, m.message, m.created_at
             FROM messages m
             JOIN users u ON u.uuid = m.user_uuid
             WHERE m.message_group_uuid = ("
                + $group
                + ")
               AND (m.created_at, m.uuid) < (
                   CASE WHEN $2::uuid IS NULL THEN 'infinity'
                        ELSE (SELECT cursor.created_at FROM messages cursor WHERE cursor.uuid = $2) END,
                   COALESCE($2, 'ffffffff-ffff-ffff-ffff-ffffffffffff'))
             ORDER BY m.created_at DESC, m.uuid DESC
             LIMIT $1",
            LIMIT,
            $before,
            $third,
            $fourth
        )
    };
}

/// The conversation `group`'s messages, newest first (a conversation lists a page [`chronologically`]), when
/// `member` takes part in it; none otherwise.
pub(crate) fn messages(group: Uuid, member: Uuid, before: Option<Uuid>) -> query_of!(Message) {
    message_page!(
        "SELECT g.message_group_uuid FROM message_group_members g WHERE g.message_group_uuid = $3 AND g.user_uuid = $4",
        before,
        group,
        member
    )
}

/// The messages of `member`'s direct conversation with the user `handle`, as [`messages`]; none when there is no
/// such conversation (yet) or no such user.
pub(crate) fn messages_with(handle: &str, member: Uuid, before: Option<Uuid>) -> query_of!(Message) {
    message_page!(
        "SELECT g.uuid FROM users other JOIN message_groups g ON g.direct_key = direct_key($4, other.uuid)
         WHERE other.handle = $3",
        before,
        handle,
        member
    )
}

/// `user`'s conversations, most recently active first, each with the other person and the last message; `before`
/// is the last conversation of the previous page. The work grows with the user's conversations (the last message
/// of each, from `messages_by_group`), never with the messages.
pub(crate) fn conversations(user: Uuid, before: Option<Uuid>) -> query_of!(MessageGroup) {
    sqlx::query_as!(
        MessageGroup,
        r#"
        SELECT me.message_group_uuid AS uuid, other.display_name, other.handle,
               last.message AS "message!", last.created_at AS "created_at!"
        FROM message_group_members me
        JOIN message_group_members them
          ON them.message_group_uuid = me.message_group_uuid AND them.user_uuid <> me.user_uuid
        JOIN users other ON other.uuid = them.user_uuid
        JOIN LATERAL (
            SELECT m.message, m.created_at FROM messages m
            WHERE m.message_group_uuid = me.message_group_uuid
            ORDER BY m.created_at DESC, m.uuid DESC LIMIT 1
        ) last ON true
        WHERE me.user_uuid = $3
          AND (last.created_at, me.message_group_uuid) < (
              CASE WHEN $2::uuid IS NULL THEN 'infinity'
                   ELSE (SELECT max(cursor.created_at) FROM messages cursor WHERE cursor.message_group_uuid = $2) END,
              COALESCE($2, 'ffffffff-ffff-ffff-ffff-ffffffffffff'))
        ORDER BY last.created_at DESC, me.message_group_uuid DESC
        LIMIT $1
        "#,
        LIMIT,
        before,
        user
    )
}

/// A newest-first page, oldest first: how a thread's replies and a conversation's messages read. The cursor of the
/// page before it is then its first item.
pub(crate) fn chronologically<T>(mut page: Vec<T>) -> Vec<T> {
    page.reverse();
    page
}

/// A [`Profile`] from `users u`: `cruds_count` counts what the profile lists (the user's activities that have not
/// expired): the user's kept count (`users.cruds_count`) less the few that expired since the last sweep.
macro_rules! profile_where {
    ($condition:literal, $arg:expr) => {
        sqlx::query_as!(
            Profile,
            r#"SELECT u.uuid, u.handle, u.display_name, u.bio,
                      u.cruds_count - (SELECT count(*) FROM activities a
                                       WHERE a.expires_at <= now() AND a.user_uuid = u.uuid) AS "cruds_count!"
               FROM users u
               WHERE "#
                + $condition,
            $arg
        )
    };
}

/// A user's public profile, by uuid.
pub(crate) fn profile_by_uuid(uuid: Uuid) -> query_of!(Profile) {
    profile_where!("u.uuid = $1", uuid)
}

/// A user's public profile, by handle (as stored: lowercase).
pub(crate) fn profile_by_handle(handle: &str) -> query_of!(Profile) {
    profile_where!("u.handle = $1", handle)
}

/// `ILIKE` treats `%`, `_` and `\` specially; a search term means them literally.
fn escape_like(term: &str) -> String {
    let mut escaped = String::with_capacity(term.len());
    for c in term.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::escape_like;

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(escape_like(r"100%_a\b"), r"100\%\_a\\b");
    }
}

/// The plans Postgres runs the feeds with, on tables large enough that reading or sorting a whole table would show.
#[cfg(test)]
mod plans {
    use std::time::Duration;

    use sqlx::{Execute, PgPool, Postgres, Row};

    use super::*;

    /// Enough rows that a sequential scan or a sort of a table costs the planner far more than an index range.
    const CRUDS: u32 = 200_000;
    /// Many users, as a real Cruddur has: one user's rows are a small share of the table.
    const USERS: u32 = 500;

    /// A database of [`CRUDS`] activities spread over `users` users.
    async fn large_database(users: u32) -> PgPool {
        let url = test_support::postgres::fresh_database().await;
        crate::db::migrate(&url).await.expect("migrate");
        let db = crate::db::connect(&url, 2, Duration::ZERO, crate::db::Plans::Generic).await.expect("connect");
        sqlx::query(
            "INSERT INTO users (display_name, handle, email)
             SELECT 'User ' || n, 'user' || n, 'user' || n || '@example.com' FROM generate_series(1, $1) n",
        )
        .bind(users as i32)
        .execute(&db)
        .await
        .expect("users");
        let bulk_load = format!("SET cruddur.bulk_cruds = {CRUDS};\n{}", include_str!("../sql/bulk_load.sql"));
        sqlx::raw_sql(&bulk_load).execute(&db).await.expect("bulk load");
        db
    }

    /// How Postgres runs `query` as sqlx runs it (a prepared statement): with the generic plan (every statement of the
    /// pool's, see [`crate::db::connect`]), or planned for `arguments` (the search's plan).
    async fn plan<'q>(db: &PgPool, query: &impl Execute<'q, Postgres>, arguments: &str, generic: bool) -> String {
        let mut connection = db.acquire().await.expect("a connection");
        let mode = if generic { "force_generic_plan" } else { "force_custom_plan" };
        let prepare = format!("SET plan_cache_mode = {mode}; PREPARE feed AS {}", query.sql());
        sqlx::raw_sql(&prepare).execute(&mut *connection).await.expect("prepare");
        let lines = sqlx::query(&format!("EXPLAIN EXECUTE feed({arguments})"))
            .fetch_all(&mut *connection)
            .await
            .expect("explain");
        sqlx::raw_sql("DEALLOCATE feed").execute(&mut *connection).await.expect("deallocate");
        lines.iter().map(|line| line.get::<String, _>(0)).collect::<Vec<_>>().join("\n")
    }

    /// Read from `index` (by a range: the feeds' cursor is part of its condition), never a whole table of activities or
    /// messages.
    fn assert_index_range(name: &str, plan: &str, index: &str) {
        assert!(!plan.contains("Seq Scan on activities") && !plan.contains("Seq Scan on messages"), "{name}:\n{plan}");
        assert!(plan.contains(&format!(" {index} ")), "{name} reads {index}:\n{plan}");
    }

    /// In the index's order: nothing sorted.
    fn assert_unsorted(name: &str, plan: &str) {
        assert!(!plan.contains("Sort"), "{name} sorts:\n{plan}");
    }

    #[tokio::test]
    async fn every_feed_reads_an_index_range() {
        let db = large_database(USERS).await;
        let mode: String = sqlx::query_scalar("SHOW plan_cache_mode").fetch_one(&db).await.expect("plan_cache_mode");
        assert_eq!(mode, "force_generic_plan", "the pool's statements run the generic plans checked below");
        let jit: String = sqlx::query_scalar("SHOW jit").fetch_one(&db).await.expect("jit");
        assert_eq!(jit, "off", "a generic plan's cost estimate is no reason to compile it");
        let user: Uuid = sqlx::query_scalar("SELECT uuid FROM users ORDER BY created_at, uuid LIMIT 1")
            .fetch_one(&db)
            .await
            .expect("a user");
        let (crud, message): (Uuid, Uuid) = sqlx::query_as(
            "SELECT (SELECT reply_to_activity_uuid FROM activities WHERE reply_to_activity_uuid IS NOT NULL LIMIT 1),
                    (SELECT uuid FROM messages LIMIT 1)",
        )
        .fetch_one(&db)
        .await
        .expect("a crud and a message");
        let group: Uuid = sqlx::query_scalar("SELECT message_group_uuid FROM messages WHERE uuid = $1")
            .bind(message)
            .fetch_one(&db)
            .await
            .expect("a group");
        let (member, other): (Uuid, String) = sqlx::query_as(
            "SELECT me.user_uuid, other.handle
             FROM message_group_members me
             JOIN message_group_members them ON them.message_group_uuid = me.message_group_uuid
                                            AND them.user_uuid <> me.user_uuid
             JOIN users other ON other.uuid = them.user_uuid
             WHERE me.message_group_uuid = $1",
        )
        .bind(group)
        .fetch_one(&db)
        .await
        .expect("the group's two members");
        let cursor = format!("'{crud}'");

        let feeds = [
            ("home", plan(&db, &home(None), &format!("{LIMIT}, {cursor}"), true).await, "activities_by_time"),
            (
                "a user's",
                plan(&db, &by_user(user, None), &format!("{LIMIT}, {cursor}, '{user}'"), true).await,
                "activities_by_user",
            ),
            (
                "notifications",
                plan(&db, &notifications(user, None), &format!("{LIMIT}, {cursor}, '{user}'"), true).await,
                "activities_by_notified_user",
            ),
            (
                "replies",
                plan(&db, &replies(crud, None), &format!("{LIMIT}, {cursor}, '{crud}'"), true).await,
                "activities_by_parent",
            ),
            (
                "a conversation",
                plan(
                    &db,
                    &messages(group, member, None),
                    &format!("{LIMIT}, '{message}', '{group}', '{member}'"),
                    true,
                )
                .await,
                "messages_by_group",
            ),
            (
                "a conversation by handle",
                plan(
                    &db,
                    &messages_with(&other, member, None),
                    &format!("{LIMIT}, '{message}', '{other}', '{member}'"),
                    true,
                )
                .await,
                "messages_by_group",
            ),
            (
                "a common search",
                plan(&db, &search_query("postgres", None), &format!("{LIMIT}, NULL, '%postgres%'"), false).await,
                "activities_by_time",
            ),
        ];
        for (name, plan, index) in &feeds {
            assert_index_range(name, plan, index);
            assert_unsorted(name, plan);
            let cursor_bounds_the_range =
                plan.lines().any(|line| line.contains("Index Cond:") && line.contains("ROW(created_at, uuid) < "));
            assert!(cursor_bounds_the_range, "{name}'s cursor is part of the index condition:\n{plan}");
        }

        // The worst search: one old crud matches. The trigram index finds it; only the matches are sorted.
        let needle =
            plan(&db, &search_query("haystackneedle", None), &format!("{LIMIT}, NULL, '%haystackneedle%'"), false)
                .await;
        assert_index_range("a rare search", &needle, "activities_message_trigrams");
        let one = plan(&db, &activity(crud), &format!("1, NULL, '{crud}'"), true).await;
        assert_index_range("one activity", &one, "activities_pkey");
        // The conversations list sorts the user's conversations, each's last message read from its index.
        let conversations = plan(&db, &conversations(user, None), &format!("{LIMIT}, '{group}', '{user}'"), true).await;
        assert_index_range("conversations", &conversations, "messages_by_group");
        // A profile subtracts the activities expired since the last sweep, found by expiry.
        let profile = plan(&db, &profile_by_handle("user1"), "'user1'", true).await;
        assert_index_range("a profile", &profile, "activities_by_expiry");
    }

    /// A new Cruddur: a few users own the table, each a large share of it. A user's page is still their own index
    /// range: walking everyone's newest-first index and skipping other users' rows would read the whole table for a
    /// user with few cruds.
    #[tokio::test]
    async fn a_users_page_reads_their_own_index_when_few_users_own_the_table() {
        let db = large_database(4).await;
        let user: Uuid = sqlx::query_scalar("SELECT uuid FROM users LIMIT 1").fetch_one(&db).await.expect("a user");
        let plan = plan(&db, &by_user(user, None), &format!("{LIMIT}, NULL, '{user}'"), true).await;
        assert_index_range("a user's, among four", &plan, "activities_by_user");
        assert_unsorted("a user's, among four", &plan);
    }
}
