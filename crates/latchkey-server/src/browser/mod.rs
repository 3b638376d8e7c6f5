//! What every page for people shares: cookies, CSRF tokens, the state of a ceremony that
//! spans two requests, and JSON answers to the pages' scripts.

pub mod ceremony;
pub mod cookies;
pub mod csrf;
pub mod device;
pub mod json;
