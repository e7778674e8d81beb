//! An authorizer for local development only: [`DevHeaderAuthorizer`], kept
//! in `upload_local` (the local mode mounts it too) and re-exported here.

pub use upload_local::dev_auth::{DevHeaderAuthorizer, OWNER_HEADER};
