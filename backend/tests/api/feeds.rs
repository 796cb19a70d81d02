//! Paging through every feed, one activity by uuid, a conversation by handle, the blank search, the sweep of expired
//! activities, and the statement timeout.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cruddur_api::{
    Activity, ActivityWithReplies, CreateMessage, CreateReply, CreatedMessage, ErrorKey, Message, MessageGroup,
    PAGE_SIZE, Profile, UserActivities,
};
use cruddur_backend::{db, seed};
use reqwest::StatusCode;
use uuid::Uuid;

use crate::helpers::{TestApp, assert_error, ok_json, spawn_app, spawn_app_with_statement_timeout, spawn_seeded_app};

/// More than two pages.
const MANY: usize = 2 * PAGE_SIZE + 5;

/// `count` cruds by `handle`, all created at the same instant (so only the uuid orders them), straight into the table.
async fn insert_cruds(app: &TestApp, handle: &str, count: usize) {
    sqlx::query(
        "INSERT INTO activities (user_uuid, message, created_at, expires_at)
         SELECT u.uuid, 'bulk crud ' || n, now() - interval '1 minute', now() + interval '1 day'
         FROM users u, generate_series(1, $2) n WHERE u.handle = $1",
    )
    .bind(handle)
    .bind(count as i32)
    .execute(&app.db)
    .await
    .unwrap();
}

/// The pages' items in order, after checking that none repeats.
fn flatten<T, K: Ord + Copy>(pages: Vec<Vec<T>>, key: impl Fn(&T) -> K) -> Vec<T> {
    let items: Vec<T> = pages.into_iter().flatten().collect();
    let mut keys: Vec<K> = items.iter().map(&key).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), items.len(), "no item is on two pages");
    items
}

fn newest_first(activities: &[Activity]) -> bool {
    activities.windows(2).all(|pair| (pair[0].created_at, pair[0].uuid) > (pair[1].created_at, pair[1].uuid))
}

#[tokio::test]
async fn the_home_feed_pages_through_every_crud_even_when_they_share_a_timestamp() {
    let app = spawn_seeded_app().await;
    insert_cruds(&app, "bayko", MANY).await;
    let pages = app.all_pages::<Activity>("/api/activities/home", None, |page| page.last().unwrap().uuid).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [PAGE_SIZE, PAGE_SIZE, 5 + 3]);
    let feed = flatten(pages, |activity| activity.uuid);
    assert!(newest_first(&feed));
    assert_eq!(feed.last().unwrap().message, "This was imported as seed data!");
}

#[tokio::test]
async fn a_profile_pages_through_its_user_s_cruds() {
    let app = spawn_seeded_app().await;
    insert_cruds(&app, "londo", PAGE_SIZE).await;
    let first: UserActivities = ok_json(app.get("/api/activities/@londo").send().await.unwrap()).await;
    assert_eq!(first.profile.cruds_count, PAGE_SIZE as i64 + 1);
    assert_eq!(first.activities.len(), PAGE_SIZE);
    let before = first.activities.last().unwrap().uuid;
    let second: UserActivities =
        ok_json(app.get("/api/activities/@londo").query(&[("before", before)]).send().await.unwrap()).await;
    assert_eq!(second.activities.len(), 1);
    assert_eq!(second.activities[0].message, "Cruds expire. Say what matters while it lasts.");
    assert_eq!(second.profile, first.profile);
}

#[tokio::test]
async fn notifications_and_replies_page_too() {
    let app = spawn_app().await;
    let author = app.signup("xena").await;
    let replier = app.signup("yuri").await;
    let crud = app.post_crud(&author.token, "reply to me, a lot").await;
    let path = format!("/api/activities/{}/reply", crud.uuid);
    for n in 0..PAGE_SIZE + 2 {
        let body = CreateReply { message: format!("reply {n}") };
        let response = app.post(&path, &body).bearer_auth(&replier.token).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    let pages = app
        .all_pages::<Activity>("/api/activities/notifications", Some(&author.token), |page| page.last().unwrap().uuid)
        .await;
    let notifications = flatten(pages, |activity| activity.uuid);
    assert_eq!(notifications.len(), PAGE_SIZE + 2);
    assert!(newest_first(&notifications));
    assert_eq!(notifications[0].message, format!("reply {}", PAGE_SIZE + 1));

    // A thread shows its newest replies oldest first; the page before starts at the first reply shown.
    let status = format!("/api/activities/@xena/status/{}", crud.uuid);
    let newest: ActivityWithReplies = ok_json(app.get(&status).send().await.unwrap()).await;
    assert_eq!(newest.replies.len(), PAGE_SIZE);
    assert_eq!(newest.replies.last().unwrap().message, format!("reply {}", PAGE_SIZE + 1));
    let before = newest.replies[0].uuid;
    let earlier: ActivityWithReplies =
        ok_json(app.get(&status).query(&[("before", before)]).send().await.unwrap()).await;
    let earlier: Vec<&str> = earlier.replies.iter().map(|reply| reply.message.as_str()).collect();
    assert_eq!(earlier, ["reply 0", "reply 1"]);
}

#[tokio::test]
async fn search_pages_newest_first_and_refuses_a_blank_term() {
    let app = spawn_seeded_app().await;
    insert_cruds(&app, "altbrown", MANY).await;
    let pages = app
        .all_pages::<Activity>("/api/activities/search?term=BULK%20crud", None, |page| page.last().unwrap().uuid)
        .await;
    let found = flatten(pages, |activity| activity.uuid);
    assert_eq!(found.len(), MANY);
    assert!(newest_first(&found));

    for query in ["", "?term=", "?term=%20%20"] {
        let response = app.get(&format!("/api/activities/search{query}")).send().await.unwrap();
        assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, &[ErrorKey::SearchTermBlank]).await;
    }
    let bad_cursor = app.get("/api/activities/home?before=yesterday").send().await.unwrap();
    assert_error(bad_cursor, StatusCode::UNPROCESSABLE_ENTITY, &[ErrorKey::InvalidQuery]).await;
    let unknown: Vec<Activity> =
        ok_json(app.get("/api/activities/home").query(&[("before", Uuid::new_v4())]).send().await.unwrap()).await;
    assert!(unknown.is_empty(), "a cursor that names nothing ends the feed");
}

#[tokio::test]
async fn one_activity_by_its_uuid() {
    let app = spawn_seeded_app().await;
    let user = app.signup("zoe").await;
    let crud = app.post_crud(&user.token, "find me by uuid").await;
    let found: Activity = ok_json(app.get(&format!("/api/activities/{}", crud.uuid)).send().await.unwrap()).await;
    assert_eq!(found, crud);

    sqlx::query("UPDATE activities SET expires_at = now() - interval '1 second' WHERE uuid = $1")
        .bind(crud.uuid)
        .execute(&app.db)
        .await
        .unwrap();
    for missing in [crud.uuid.to_string(), Uuid::new_v4().to_string(), "42".to_owned()] {
        let response = app.get(&format!("/api/activities/{missing}")).send().await.unwrap();
        assert_error(response, StatusCode::NOT_FOUND, &[ErrorKey::NotFound]).await;
    }
}

#[tokio::test]
async fn a_conversation_is_found_by_the_other_person_s_handle() {
    let app = spawn_app().await;
    let ann = app.signup("ann").await;
    let bob = app.signup("bob").await;
    app.signup("cid").await;

    let empty: Vec<Message> =
        ok_json(app.get("/api/messages/@bob").bearer_auth(&ann.token).send().await.unwrap()).await;
    assert!(empty.is_empty(), "no conversation until the first message");
    let signed_out = app.get("/api/messages/@bob").send().await.unwrap();
    assert_error(signed_out, StatusCode::UNAUTHORIZED, &[ErrorKey::Unauthorized]).await;
    let nobody = app.get("/api/messages/@nobody_here").bearer_auth(&ann.token).send().await.unwrap();
    assert_error(nobody, StatusCode::NOT_FOUND, &[ErrorKey::NotFound]).await;

    let first = CreateMessage { message: "hi bob".into(), handle: Some("bob".into()), ..Default::default() };
    let sent: CreatedMessage =
        ok_json(app.post("/api/messages", &first).bearer_auth(&ann.token).send().await.unwrap()).await;
    let answer = CreateMessage { message: "hi ann".into(), handle: Some("ann".into()), ..Default::default() };
    let response = app.post("/api/messages", &answer).bearer_auth(&bob.token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    for (token, other) in [(&ann.token, "bob"), (&bob.token, "ann")] {
        let conversation: Vec<Message> =
            ok_json(app.get(&format!("/api/messages/@{other}")).bearer_auth(token).send().await.unwrap()).await;
        let texts: Vec<&str> = conversation.iter().map(|message| message.message.as_str()).collect();
        assert_eq!(texts, ["hi bob", "hi ann"], "oldest first, the same for both");
    }
    let not_theirs: Vec<Message> =
        ok_json(app.get("/api/messages/@cid").bearer_auth(&ann.token).send().await.unwrap()).await;
    assert!(not_theirs.is_empty());

    // A long conversation: its newest page, then the one before it, by handle and by uuid alike.
    sqlx::query(
        "INSERT INTO messages (message_group_uuid, user_uuid, message, created_at)
         SELECT $1, u.uuid, 'later ' || n, now() + n * interval '1 millisecond'
         FROM users u, generate_series(1, $2) n WHERE u.handle = 'bob'",
    )
    .bind(sent.message_group_uuid)
    .bind(PAGE_SIZE as i32)
    .execute(&app.db)
    .await
    .unwrap();
    for path in ["/api/messages/@bob".to_owned(), format!("/api/messages/{}", sent.message_group_uuid)] {
        let newest: Vec<Message> = ok_json(app.get(&path).bearer_auth(&ann.token).send().await.unwrap()).await;
        assert_eq!(newest.len(), PAGE_SIZE);
        assert_eq!((newest[0].message.as_str(), newest[PAGE_SIZE - 1].message.as_str()), ("later 1", "later 40"));
        let earlier: Vec<Message> =
            ok_json(app.get(&path).query(&[("before", newest[0].uuid)]).bearer_auth(&ann.token).send().await.unwrap())
                .await;
        let texts: Vec<&str> = earlier.iter().map(|message| message.message.as_str()).collect();
        assert_eq!(texts, ["hi bob", "hi ann"]);
    }
}

#[tokio::test]
async fn conversations_page_most_recent_first() {
    let app = spawn_app().await;
    let host = app.signup("host").await;
    // Guests who never sign in: straight into the table (signing up hashes a password, which takes a while).
    sqlx::query(
        "INSERT INTO users (display_name, handle, email)
         SELECT 'Guest ' || n, 'guest' || n, 'guest' || n || '@example.com' FROM generate_series(0, $1) n",
    )
    .bind(PAGE_SIZE as i32)
    .execute(&app.db)
    .await
    .unwrap();
    for n in 0..PAGE_SIZE + 1 {
        let guest = format!("guest{n}");
        let body = CreateMessage { message: format!("to {guest}"), handle: Some(guest), ..Default::default() };
        let response = app.post("/api/messages", &body).bearer_auth(&host.token).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let pages =
        app.all_pages::<MessageGroup>("/api/message_groups", Some(&host.token), |page| page.last().unwrap().uuid).await;
    let groups = flatten(pages, |group| group.uuid);
    assert_eq!(groups.len(), PAGE_SIZE + 1);
    assert_eq!(groups[0].message, format!("to guest{PAGE_SIZE}"));
    assert_eq!(groups.last().unwrap().message, "to guest0");
}

#[tokio::test]
async fn the_sweep_deletes_expired_activities_and_counts_stay_right() {
    let app = spawn_app().await;
    let author = app.signup("ada").await;
    let replier = app.signup("bea").await;
    let kept = app.post_crud(&author.token, "kept").await;
    let gone = app.post_crud(&author.token, "gone").await;
    let reply = app
        .post(&format!("/api/activities/{}/reply", gone.uuid), &CreateReply { message: "gone too".into() })
        .bearer_auth(&replier.token)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    sqlx::query(
        "UPDATE activities SET expires_at = now() - interval '1 second' WHERE $1 IN (uuid, reply_to_activity_uuid)",
    )
    .bind(gone.uuid)
    .execute(&app.db)
    .await
    .unwrap();

    let count = |handle: &'static str| {
        let request = app.get(&format!("/api/activities/@{handle}"));
        async move { ok_json::<UserActivities>(request.send().await.unwrap()).await.profile.cruds_count }
    };
    assert_eq!((count("ada").await, count("bea").await), (1, 0), "expired, not yet swept");
    assert!(db::delete_expired(&app.db).await.unwrap() >= 1);
    assert_eq!((count("ada").await, count("bea").await), (1, 0), "swept");
    let left: Vec<Uuid> = sqlx::query_scalar("SELECT uuid FROM activities").fetch_all(&app.db).await.unwrap();
    assert_eq!(left, [kept.uuid]);
    assert_eq!(db::delete_expired(&app.db).await.unwrap(), 0);

    // The kept count follows new cruds and a deleted account's cruds.
    app.post_crud(&author.token, "one more").await;
    let profile: Profile = ok_json(
        app.post("/api/profile/update", &serde_json::json!({"display_name": "Ada"}))
            .bearer_auth(&author.token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(profile.cruds_count, 2);
}

/// A log that tests can read: what the fmt layer writes.
#[derive(Clone, Default)]
struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// One thread: the server's tasks run where the test's log subscriber is the default.
#[tokio::test(flavor = "current_thread")]
async fn a_statement_past_the_timeout_answers_503_and_says_why() {
    let log = CapturedLog::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
    let _default = tracing::subscriber::set_default(subscriber);
    let app = spawn_app_with_statement_timeout(Duration::from_millis(300)).await;

    // Another session holds the table, so the feed's query waits on its lock until the timeout cancels it.
    let mut holder = app.db.begin().await.unwrap();
    sqlx::query("LOCK TABLE activities IN ACCESS EXCLUSIVE MODE").execute(&mut *holder).await.unwrap();
    let response = app.get("/api/activities/home").send().await.unwrap();
    assert_error(response, StatusCode::SERVICE_UNAVAILABLE, &[ErrorKey::Timeout]).await;
    holder.rollback().await.unwrap();

    let log = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    let line =
        log.lines().find(|line| line.contains(" failed exception_type=timeout")).unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains("DATABASE_STATEMENT_TIMEOUT_MS") && line.contains("statement timeout"), "{line}");
    assert!(line.contains("/api/activities/home"), "in the request's span: {line}");

    // The pool is usable again at once.
    assert!(app.home().await.is_empty());
}

#[tokio::test]
async fn searches_that_wait_for_a_connection_leave_the_feeds_theirs() {
    let app = spawn_app_with_statement_timeout(Duration::from_secs(2)).await;
    seed::load(&app.db).await.unwrap();
    // Every search connection busy, as under a flood of searches.
    let mut held = Vec::new();
    for _ in 0..app.search_db.options().get_max_connections() {
        held.push(app.search_db.acquire().await.unwrap());
    }

    let search = app.get("/api/activities/search?term=seed").send().await.unwrap();
    assert_error(search, StatusCode::SERVICE_UNAVAILABLE, &[ErrorKey::Timeout]).await;
    assert!(!app.home().await.is_empty(), "the home feed answers meanwhile");

    drop(held);
    let found: Vec<Activity> = ok_json(app.get("/api/activities/search?term=seed").send().await.unwrap()).await;
    assert_eq!(found[0].handle, "andrewbrown");
}
