//! An authorizer for local development only (the local mode's and the
//! examples' `presign-server`'s).

use upload_server::http::request::Parts;
use upload_server::{AuthError, Authorizer, Owner, async_trait};

/// **For local development only: it trusts the client.** Takes the owner
/// from the `x-owner` request header, as the demo pages, the README's
/// curl walk-through and the end-to-end test send it; `anonymous` when
/// the header is absent. Anyone can name any owner, so never mount it
/// where real users reach the API: give `upload_server::AppState` your
/// own [`Authorizer`] (session cookie, bearer token, ...).
///
/// Refuses with 401 `unauthorized` an `x-owner` given more than once, not
/// ASCII, or not 1..=128 of `[A-Za-z0-9_-]` ([`Owner`]'s rules).
#[derive(Debug, Clone, Copy, Default)]
pub struct DevHeaderAuthorizer;

/// The header [`DevHeaderAuthorizer`] reads.
pub const OWNER_HEADER: &str = "x-owner";

#[async_trait]
impl Authorizer for DevHeaderAuthorizer {
    async fn authorize(&self, parts: &Parts) -> Result<Owner, AuthError> {
        let mut given = parts.headers.get_all(OWNER_HEADER).iter();
        let name = match (given.next(), given.next()) {
            (None, _) => return Ok(Owner::new("anonymous").expect("a valid owner")),
            (Some(_), Some(_)) => {
                return Err(AuthError::unauthorized("x-owner given more than once"));
            }
            (Some(v), None) => v.to_str().unwrap_or("\u{0}"),
        };
        Owner::new(name)
            .map_err(|_| AuthError::unauthorized("x-owner must be 1..=128 of [A-Za-z0-9_-]"))
    }
}
