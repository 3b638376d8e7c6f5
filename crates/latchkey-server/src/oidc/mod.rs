//! OpenID Connect on top of the OAuth server: discovery, claims, UserInfo, logout.

pub mod discovery;
pub mod end_session;
pub mod userinfo;
