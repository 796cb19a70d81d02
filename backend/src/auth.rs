//! Accounts without Cognito: argon2 password hashes and signed, expiring session tokens (JWT, HS256), checked by
//! one pair of extractors, [`CurrentUser`] and [`MaybeUser`]. Every route reaches identity only through them, so a
//! Cognito verifier (JWKS, RS256) can later be added inside [`Tokens::verify`] without touching a handler.

use std::sync::{Arc, OnceLock};

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::{FromRef, FromRequestParts};
use chrono::{TimeDelta, Utc};
use cruddur_api::{ErrorKey, Password};
use http::header::AUTHORIZATION;
use http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ApiError;

const ISSUER: &str = "cruddur";

/// Issues and verifies session tokens.
#[derive(Clone)]
pub struct Tokens(Arc<TokenKeys>);

struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: TimeDelta,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: Uuid,
    iss: String,
    iat: i64,
    exp: i64,
}

impl Tokens {
    /// Tokens signed with `secret`, valid for `ttl` after they are issued.
    pub fn new(secret: &[u8], ttl: TimeDelta) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        // An expired token is expired: no grace period.
        validation.leeway = 0;
        Self(Arc::new(TokenKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
        }))
    }

    /// Tokens signed with a random secret, valid until this process ends.
    pub fn random(ttl: TimeDelta) -> Self {
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        Self::new(&secret, ttl)
    }

    pub fn issue(&self, user: Uuid) -> Result<String, ApiError> {
        let now = Utc::now();
        let claims =
            Claims { sub: user, iss: ISSUER.to_owned(), iat: now.timestamp(), exp: (now + self.0.ttl).timestamp() };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.0.encoding)
            .map_err(|error| ApiError::Internal(format!("signing a token: {error}")))
    }

    /// The user a token was issued to, if its signature, issuer and expiry hold.
    pub fn verify(&self, token: &str) -> Result<Uuid, ApiError> {
        jsonwebtoken::decode::<Claims>(token, &self.0.decoding, &self.0.validation)
            .map(|data| data.claims.sub)
            .map_err(|_| ApiError::Unauthorized(ErrorKey::Unauthorized))
    }
}

/// The signed-in caller; rejects the request with 401 when there is no valid bearer token.
#[derive(Debug, Clone, Copy)]
pub struct CurrentUser {
    pub uuid: Uuid,
}

/// The caller if signed in. A request without `Authorization` is signed out; one with an invalid token is a 401,
/// so a client with an expired session learns it.
#[derive(Debug, Clone, Copy)]
pub struct MaybeUser(pub Option<CurrentUser>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeUser
where
    Tokens: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Some(header) = parts.headers.get(AUTHORIZATION) else {
            return Ok(Self(None));
        };
        let token = header
            .to_str()
            .ok()
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or(ApiError::Unauthorized(ErrorKey::Unauthorized))?;
        let uuid = Tokens::from_ref(state).verify(token)?;
        Ok(Self(Some(CurrentUser { uuid })))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CurrentUser
where
    Tokens: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        MaybeUser::from_request_parts(parts, state).await?.0.ok_or(ApiError::Unauthorized(ErrorKey::Unauthorized))
    }
}

/// Hashes a password with argon2id, off the async threads (it takes tens of milliseconds by design).
pub async fn hash_password(password: Password) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default().hash_password(password.as_str().as_bytes(), &salt).map(|hash| hash.to_string())
    })
    .await
    .map_err(|error| ApiError::Internal(format!("hashing task: {error}")))?
    .map_err(|error| ApiError::Internal(format!("hashing a password: {error}")))
}

/// Whether `password` matches `stored_hash`. Without a stored hash (unknown email, or an account that signs in
/// elsewhere) a hash is still verified, so the answer takes as long and does not reveal which emails exist.
pub async fn verify_password(password: String, stored_hash: Option<String>) -> Result<bool, ApiError> {
    tokio::task::spawn_blocking(move || {
        let known = stored_hash.is_some();
        let hash = stored_hash.unwrap_or_else(|| decoy_hash().to_owned());
        let matches = PasswordHash::new(&hash)
            .map(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
            .unwrap_or(false);
        known && matches
    })
    .await
    .map_err(|error| ApiError::Internal(format!("verifying task: {error}")))
}

fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default().hash_password(b"decoy password", &salt).expect("argon2 hashes a constant").to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_user_until_it_expires() {
        let tokens = Tokens::new(b"0123456789abcdef0123456789abcdef", TimeDelta::hours(1));
        let user = Uuid::new_v4();
        assert_eq!(tokens.verify(&tokens.issue(user).unwrap()).unwrap(), user);

        let expired = Tokens::new(b"0123456789abcdef0123456789abcdef", TimeDelta::seconds(-1));
        assert!(tokens.verify(&expired.issue(user).unwrap()).is_err());
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let ours = Tokens::random(TimeDelta::hours(1));
        let theirs = Tokens::random(TimeDelta::hours(1));
        assert!(ours.verify(&theirs.issue(Uuid::new_v4()).unwrap()).is_err());
        assert!(ours.verify("not.a.token").is_err());
    }

    #[tokio::test]
    async fn passwords_verify_only_against_their_own_hash() {
        let hash = hash_password(Password::parse("correct horse").unwrap()).await.unwrap();
        assert!(!hash.contains("correct horse"));
        assert!(verify_password("correct horse".into(), Some(hash.clone())).await.unwrap());
        assert!(!verify_password("wrong horse!".into(), Some(hash)).await.unwrap());
        assert!(!verify_password("decoy password".into(), None).await.unwrap());
    }
}
