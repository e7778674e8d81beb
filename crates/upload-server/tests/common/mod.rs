//! The tests' stand-in for an app's authentication: `x-owner` names the
//! owner (like the example's `DevHeaderAuthorizer`, but absent is 401);
//! the owner `banned` is refused with 403.

use std::sync::Arc;

use upload_server::http::request::Parts;
use upload_server::{AuthError, Authorizer, FnAuthorizer, Owner};

pub fn test_authorizer() -> Arc<dyn Authorizer> {
    Arc::new(FnAuthorizer(|parts: &Parts| {
        let given: Vec<_> = parts
            .headers
            .get_all("x-owner")
            .iter()
            .map(|v| v.to_str().map(str::to_owned))
            .collect();
        async move {
            match given.as_slice() {
                [] => Err(AuthError::unauthorized("sign in first")),
                [Ok(name)] if name == "banned" => {
                    Err(AuthError::forbidden("this account may not upload"))
                }
                [Ok(name)] => {
                    Owner::new(name.as_str()).map_err(|e| AuthError::unauthorized(e.to_string()))
                }
                _ => Err(AuthError::unauthorized("one x-owner, in ASCII")),
            }
        }
    }))
}
