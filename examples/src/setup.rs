//! Everything a deployment needs in the store and the queue, made in one
//! idempotent call. The logic lives in the library
//! ([`upload_pipeline::deploy`]); this module keeps the examples' names.

pub use upload_pipeline::deploy::{SetupPlan, SetupResult, setup as run};
