//! Direct messages: starting a conversation by handle, answering in it, listing, and privacy.

use cruddur_api::{CreateMessage, CreatedMessage, ErrorKey, Message, MessageGroup};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, assert_error, ok_json, spawn_app, spawn_seeded_app};

async fn send(app: &TestApp, token: &str, body: &CreateMessage) -> CreatedMessage {
    ok_json(app.post("/api/messages", body).bearer_auth(token).send().await.unwrap()).await
}

#[tokio::test]
async fn two_people_exchange_messages_in_one_conversation() {
    let app = spawn_app().await;
    let rose = app.signup("rose").await;
    let sam = app.signup("sam").await;

    let first = send(
        &app,
        &rose.token,
        &CreateMessage { message: "hi sam".into(), handle: Some("@Sam".into()), ..Default::default() },
    )
    .await;
    assert_eq!(first.message.handle, "rose");
    let group = first.message_group_uuid;

    // Sam answers in the conversation; writing to Rose by handle lands in the same one.
    let answer = send(
        &app,
        &sam.token,
        &CreateMessage { message: "hi rose".into(), message_group_uuid: Some(group), ..Default::default() },
    )
    .await;
    assert_eq!(answer.message_group_uuid, group);
    let by_handle = send(
        &app,
        &sam.token,
        &CreateMessage { message: "again".into(), handle: Some("rose".into()), ..Default::default() },
    )
    .await;
    assert_eq!(by_handle.message_group_uuid, group);

    let messages: Vec<Message> =
        ok_json(app.get(&format!("/api/messages/{group}")).bearer_auth(&rose.token).send().await.unwrap()).await;
    assert_eq!(messages.iter().map(|m| m.message.as_str()).collect::<Vec<_>>(), ["hi sam", "hi rose", "again"]);
    assert_eq!(messages[1].display_name, "sam Person");

    let rose_groups: Vec<MessageGroup> =
        ok_json(app.get("/api/message_groups").bearer_auth(&rose.token).send().await.unwrap()).await;
    assert_eq!(rose_groups.len(), 1);
    assert_eq!((rose_groups[0].uuid, rose_groups[0].handle.as_str()), (group, "sam"));
    assert_eq!(rose_groups[0].message, "again", "the last message");
    let sam_groups: Vec<MessageGroup> =
        ok_json(app.get("/api/message_groups").bearer_auth(&sam.token).send().await.unwrap()).await;
    assert_eq!(sam_groups[0].handle, "rose");
}

#[tokio::test]
async fn conversations_are_private() {
    let app = spawn_app().await;
    let tina = app.signup("tina").await;
    app.signup("uma").await;
    let outsider = app.signup("victor").await;
    let sent = send(
        &app,
        &tina.token,
        &CreateMessage { message: "secret".into(), handle: Some("uma".into()), ..Default::default() },
    )
    .await;
    let group = sent.message_group_uuid;

    let read = app.get(&format!("/api/messages/{group}")).bearer_auth(&outsider.token).send().await.unwrap();
    assert_error(read, StatusCode::NOT_FOUND, &[ErrorKey::NotFound]).await;
    let write = app
        .post(
            "/api/messages",
            &CreateMessage { message: "let me in".into(), message_group_uuid: Some(group), ..Default::default() },
        )
        .bearer_auth(&outsider.token)
        .send()
        .await
        .unwrap();
    assert_error(write, StatusCode::NOT_FOUND, &[ErrorKey::NotFound]).await;
    let groups: Vec<MessageGroup> =
        ok_json(app.get("/api/message_groups").bearer_auth(&outsider.token).send().await.unwrap()).await;
    assert!(groups.is_empty());
}

#[tokio::test]
async fn bad_messages_are_refused_with_their_reasons() {
    let app = spawn_seeded_app().await;
    let user = app.signup("wendy").await;
    let cases = [
        (json!({"message": "to nobody"}), StatusCode::UNPROCESSABLE_ENTITY, vec![ErrorKey::MessageRecipientMissing]),
        (json!({"message": "", "handle": "bayko"}), StatusCode::UNPROCESSABLE_ENTITY, vec![ErrorKey::MessageBlank]),
        (
            json!({"message": "x".repeat(1025), "handle": "bayko"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            vec![ErrorKey::MessageExceedMaxChars],
        ),
        (
            json!({"message": "me", "handle": "wendy"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            vec![ErrorKey::CannotMessageSelf],
        ),
        (json!({"message": "who?", "handle": "nobody_here"}), StatusCode::NOT_FOUND, vec![ErrorKey::NotFound]),
        (
            json!({"message": "where?", "message_group_uuid": uuid::Uuid::new_v4()}),
            StatusCode::NOT_FOUND,
            vec![ErrorKey::NotFound],
        ),
    ];
    for (body, status, keys) in cases {
        let response = app.post("/api/messages", &body).bearer_auth(&user.token).send().await.unwrap();
        assert_error(response, status, &keys).await;
    }
}

#[tokio::test]
async fn the_seed_has_a_conversation() {
    let app = spawn_seeded_app().await;
    let signin = json!({"email": "andrew@exampro.co", "password": cruddur_backend::seed::SEED_PASSWORD});
    let andrew: cruddur_api::AuthResponse = ok_json(app.post("/api/auth/signin", &signin).send().await.unwrap()).await;
    let groups: Vec<MessageGroup> =
        ok_json(app.get("/api/message_groups").bearer_auth(&andrew.token).send().await.unwrap()).await;
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].handle, "bayko");
}
