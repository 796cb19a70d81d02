//! Users: the short profile and profile updates.

use cruddur_api::{ErrorKey, Profile, UpdateProfile, UserShort};
use reqwest::StatusCode;

use crate::helpers::{assert_error, ok_json, spawn_app, spawn_seeded_app};

#[tokio::test]
async fn the_short_profile_names_a_user() {
    let app = spawn_seeded_app().await;
    let short: UserShort = ok_json(app.get("/api/users/@londo/short").send().await.unwrap()).await;
    assert_eq!((short.handle.as_str(), short.display_name.as_str()), ("londo", "Londo Mollari"));
    let missing = app.get("/api/users/@nobody_here/short").send().await.unwrap();
    assert_error(missing, StatusCode::NOT_FOUND, &[ErrorKey::NotFound]).await;
}

#[tokio::test]
async fn a_user_updates_their_own_profile() {
    let app = spawn_app().await;
    let user = app.signup("peggy").await;
    let update = UpdateProfile { bio: Some("  I trace things.  ".into()), display_name: "Peggy Carter".into() };
    let profile: Profile =
        ok_json(app.post("/api/profile/update", &update).bearer_auth(&user.token).send().await.unwrap()).await;
    assert_eq!(profile.display_name, "Peggy Carter");
    assert_eq!(profile.bio.as_deref(), Some("I trace things."));
    assert_eq!(profile.handle, "peggy");

    // The new name shows wherever the user appears.
    let crud = app.post_crud(&user.token, "renamed").await;
    assert_eq!(crud.display_name, "Peggy Carter");

    let cleared = UpdateProfile { bio: Some(" ".into()), display_name: "Peggy".into() };
    let profile: Profile =
        ok_json(app.post("/api/profile/update", &cleared).bearer_auth(&user.token).send().await.unwrap()).await;
    assert_eq!(profile.bio, None);
}

#[tokio::test]
async fn profile_updates_are_validated() {
    let app = spawn_app().await;
    let user = app.signup("quinn").await;
    let update = UpdateProfile { bio: Some("b".repeat(281)), display_name: " ".into() };
    let response = app.post("/api/profile/update", &update).bearer_auth(&user.token).send().await.unwrap();
    assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        &[ErrorKey::DisplayNameBlank, ErrorKey::BioExceedMaxChars],
    )
    .await;
}
