//! Example wiring of the upload SDK.
//!
//! - [`quickstart`]: the whole direct-upload flow in one process, on
//!   in-memory storage, queue and scanner, over real HTTP: presign, upload
//!   (single PUT or multipart with parallel parts), ObjectCreated event,
//!   magic-byte check, virus scan, image variants, served URL.

pub mod quickstart;
