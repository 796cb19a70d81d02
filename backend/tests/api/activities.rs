//! Cruds, replies and the feeds: ttl and length rules, expiry, order, search, profiles, notifications.

use chrono::{TimeDelta, Utc};
use cruddur_api::{Activity, ActivityWithReplies, CreateActivity, CreateReply, ErrorKey, Ttl, UserActivities};
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{assert_error, ok_json, spawn_app, spawn_seeded_app};

#[tokio::test]
async fn the_home_feed_lists_the_seed_newest_first() {
    let app = spawn_seeded_app().await;
    let feed = app.home().await;
    assert_eq!(feed.len(), 3);
    assert!(feed.windows(2).all(|pair| pair[0].created_at >= pair[1].created_at));
    let original = feed.last().unwrap();
    assert_eq!(original.message, "This was imported as seed data!");
    assert_eq!(original.handle, "andrewbrown");
    assert_eq!(original.display_name, "Andrew Brown");
}

#[tokio::test]
async fn a_posted_crud_expires_after_its_ttl_and_tops_the_feed() {
    let app = spawn_seeded_app().await;
    let user = app.signup("frank").await;
    for ttl in Ttl::ALL {
        let body = CreateActivity { message: format!("lives {}", ttl.label()), ttl: ttl.as_str().into() };
        let before = Utc::now();
        let crud: Activity =
            ok_json(app.post("/api/activities", &body).bearer_auth(&user.token).send().await.unwrap()).await;
        let expires_at = crud.expires_at.expect("a crud expires");
        let lifetime = expires_at - before;
        assert!(
            lifetime >= ttl.duration() - TimeDelta::seconds(1) && lifetime <= ttl.duration() + TimeDelta::seconds(5)
        );
        assert_eq!((crud.replies_count, crud.likes_count, crud.reposts_count), (0, 0, 0));
        assert_eq!(app.home().await[0], crud);
    }
}

#[tokio::test]
async fn crud_rules_answer_the_original_error_keys() {
    let app = spawn_app().await;
    let user = app.signup("grace").await;
    let cases = [
        (json!({"message": "hi"}), vec![ErrorKey::TtlBlank]),
        (json!({"message": "hi", "ttl": "2-days"}), vec![ErrorKey::TtlInvalid]),
        (json!({"message": "   ", "ttl": "1-day"}), vec![ErrorKey::MessageBlank]),
        (json!({"message": "x".repeat(281), "ttl": "1-day"}), vec![ErrorKey::MessageExceedMaxChars]),
        (json!({}), vec![ErrorKey::MessageBlank, ErrorKey::TtlBlank]),
    ];
    for (body, keys) in cases {
        let response = app.post("/api/activities", &body).bearer_auth(&user.token).send().await.unwrap();
        assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, &keys).await;
    }
    let exactly_280 = json!({"message": "é".repeat(280), "ttl": "1-hour"});
    let response = app.post("/api/activities", &exactly_280).bearer_auth(&user.token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn replies_count_on_their_crud_and_list_under_it_oldest_first() {
    let app = spawn_seeded_app().await;
    let author = app.signup("heidi").await;
    let replier = app.signup("ivan").await;
    let crud = app.post_crud(&author.token, "reply to me").await;

    let mut replies = Vec::new();
    for text in ["first", "second"] {
        let reply: Activity = ok_json(
            app.post(&format!("/api/activities/{}/reply", crud.uuid), &CreateReply { message: text.into() })
                .bearer_auth(&replier.token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(reply.reply_to_activity_uuid, Some(crud.uuid));
        assert_eq!(reply.expires_at, crud.expires_at, "a reply leaves with its crud");
        replies.push(reply);
    }

    let status: ActivityWithReplies =
        ok_json(app.get(&format!("/api/activities/@heidi/status/{}", crud.uuid)).send().await.unwrap()).await;
    assert_eq!(status.activity.replies_count, 2);
    assert_eq!(status.replies, replies);

    // Both the crud and the replies show in the home feed and on the replier's profile.
    let home = app.home().await;
    assert!(home.iter().any(|activity| activity.uuid == crud.uuid && activity.replies_count == 2));
    assert!(replies.iter().all(|reply| home.contains(reply)));
    let profile: UserActivities = ok_json(app.get("/api/activities/@ivan").send().await.unwrap()).await;
    assert_eq!(profile.activities.len(), 2);
}

#[tokio::test]
async fn concurrent_replies_keep_the_count_right() {
    let app = spawn_app().await;
    let user = app.signup("judy").await;
    let crud = app.post_crud(&user.token, "count these").await;
    let path = format!("/api/activities/{}/reply", crud.uuid);
    let sends = (0..10)
        .map(|n| app.post(&path, &CreateReply { message: format!("reply {n}") }).bearer_auth(&user.token).send());
    for response in futures::future::join_all(sends).await {
        assert_eq!(response.unwrap().status(), StatusCode::OK);
    }
    let status: ActivityWithReplies =
        ok_json(app.get(&format!("/api/activities/@judy/status/{}", crud.uuid)).send().await.unwrap()).await;
    assert_eq!(status.activity.replies_count, 10);
    assert_eq!(status.replies.len(), 10);
}

#[tokio::test]
async fn reply_rules_and_missing_cruds() {
    let app = spawn_app().await;
    let user = app.signup("ken").await;
    let crud = app.post_crud(&user.token, "hi").await;
    let path = format!("/api/activities/{}/reply", crud.uuid);
    let ok = app.post(&path, &CreateReply { message: "y".repeat(1024) }).bearer_auth(&user.token).send().await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let long =
        app.post(&path, &CreateReply { message: "y".repeat(1025) }).bearer_auth(&user.token).send().await.unwrap();
    assert_error(long, StatusCode::UNPROCESSABLE_ENTITY, &[ErrorKey::MessageExceedMaxChars]).await;
    let blank = app.post(&path, &json!({})).bearer_auth(&user.token).send().await.unwrap();
    assert_error(blank, StatusCode::UNPROCESSABLE_ENTITY, &[ErrorKey::MessageBlank]).await;
    for missing in [Uuid::new_v4().to_string(), "not-a-uuid".to_owned()] {
        let response = app
            .post(&format!("/api/activities/{missing}/reply"), &CreateReply { message: "hello?".into() })
            .bearer_auth(&user.token)
            .send()
            .await
            .unwrap();
        assert_error(response, StatusCode::NOT_FOUND, &[ErrorKey::NotFound]).await;
    }
}

#[tokio::test]
async fn expired_cruds_vanish_from_every_view() {
    let app = spawn_seeded_app().await;
    let user = app.signup("leo").await;
    let crud = app.post_crud(&user.token, "ephemeral words").await;
    sqlx::query("UPDATE activities SET expires_at = now() - interval '1 second' WHERE uuid = $1")
        .bind(crud.uuid)
        .execute(&app.db)
        .await
        .unwrap();

    assert!(!app.home().await.iter().any(|activity| activity.uuid == crud.uuid));
    let found: Vec<Activity> = ok_json(app.get("/api/activities/search?term=ephemeral").send().await.unwrap()).await;
    assert!(found.is_empty());
    let profile: UserActivities = ok_json(app.get("/api/activities/@leo").send().await.unwrap()).await;
    assert!(profile.activities.is_empty());
    assert_eq!(profile.profile.cruds_count, 0);
    let status = app.get(&format!("/api/activities/@leo/status/{}", crud.uuid)).send().await.unwrap();
    assert_error(status, StatusCode::NOT_FOUND, &[ErrorKey::NotFound]).await;
    let reply = app
        .post(&format!("/api/activities/{}/reply", crud.uuid), &CreateReply { message: "too late".into() })
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap();
    assert_error(reply, StatusCode::NOT_FOUND, &[ErrorKey::NotFound]).await;
}

#[tokio::test]
async fn search_matches_substrings_literally_and_ignores_case() {
    let app = spawn_seeded_app().await;
    let user = app.signup("mallory").await;
    app.post_crud(&user.token, "Rust makes 100% sense").await;
    app.post_crud(&user.token, "100 percent_of the time").await;
    let search = |term: &str| {
        let request = app.get("/api/activities/search").query(&[("term", term)]);
        async move { ok_json::<Vec<Activity>>(request.send().await.unwrap()).await }
    };
    assert_eq!(search("RUST").await.len(), 1);
    assert_eq!(search("100%").await.len(), 1, "% is not a wildcard");
    assert_eq!(search("_").await.len(), 1, "_ is not a wildcard");
    assert_eq!(search("seed data").await[0].handle, "andrewbrown");
    assert!(search("'; DROP TABLE activities; --").await.is_empty());
    assert_eq!(app.home().await.len(), 5, "the table survived");
}

#[tokio::test]
async fn a_profile_lists_its_user_s_cruds_with_their_count() {
    let app = spawn_seeded_app().await;
    let profile: UserActivities = ok_json(app.get("/api/activities/@AndrewBrown").send().await.unwrap()).await;
    assert_eq!(profile.profile.handle, "andrewbrown");
    assert_eq!(profile.profile.display_name, "Andrew Brown");
    assert_eq!(profile.profile.cruds_count, 1);
    assert_eq!(profile.activities.len(), 1);
    assert!(profile.profile.bio.is_some());

    let missing = app.get("/api/activities/@nobody_here").send().await.unwrap();
    assert_error(missing, StatusCode::NOT_FOUND, &[ErrorKey::NotFound]).await;
}

#[tokio::test]
async fn a_crud_is_found_only_under_its_author_s_handle() {
    let app = spawn_seeded_app().await;
    let crud = app.home().await.pop().unwrap();
    let right = app.get(&format!("/api/activities/@andrewbrown/status/{}", crud.uuid)).send().await.unwrap();
    assert_eq!(right.status(), StatusCode::OK);
    let wrong = app.get(&format!("/api/activities/@bayko/status/{}", crud.uuid)).send().await.unwrap();
    assert_error(wrong, StatusCode::NOT_FOUND, &[ErrorKey::NotFound]).await;
    let malformed = app.get("/api/activities/@andrewbrown/status/42").send().await.unwrap();
    assert_error(malformed, StatusCode::NOT_FOUND, &[ErrorKey::NotFound]).await;
}

#[tokio::test]
async fn notifications_are_other_people_s_replies_to_my_cruds() {
    let app = spawn_app().await;
    let author = app.signup("nina").await;
    let friend = app.signup("oscar").await;
    let crud = app.post_crud(&author.token, "talk to me").await;
    let path = format!("/api/activities/{}/reply", crud.uuid);
    for (token, text) in [(&friend.token, "hello nina"), (&author.token, "my own reply")] {
        let response = app.post(&path, &CreateReply { message: text.into() }).bearer_auth(token).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let mine: Vec<Activity> =
        ok_json(app.get("/api/activities/notifications").bearer_auth(&author.token).send().await.unwrap()).await;
    assert_eq!(mine.iter().map(|activity| activity.message.as_str()).collect::<Vec<_>>(), ["hello nina"]);
    let signed_out: Vec<Activity> = ok_json(app.get("/api/activities/notifications").send().await.unwrap()).await;
    assert!(signed_out.is_empty());
}
