//! The user claims as the edge shows them: which exist (discovery) and what each is (the
//! consent page). Which a grant releases is the services' (`latchkey_service::grants::claims`).

/// Every claim Latchkey can put in an ID token or UserInfo response (discovery lists them).
/// `roles`, `groups` and `entitlements` (RFC 9068 §2.2.3.1) go to clients whose access policy
/// releases them.
pub const SUPPORTED: [&str; 34] = [
    "sub",
    "iss",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "acr",
    "amr",
    "azp",
    "sid",
    "at_hash",
    "name",
    "given_name",
    "family_name",
    "middle_name",
    "nickname",
    "preferred_username",
    "profile",
    "picture",
    "website",
    "gender",
    "birthdate",
    "zoneinfo",
    "locale",
    "updated_at",
    "email",
    "email_verified",
    "phone_number",
    "phone_number_verified",
    "address",
    "roles",
    "groups",
    "entitlements",
];

/// What the consent page says a user claim is.
pub fn describe(name: &str) -> &'static str {
    match name {
        "name" => "Your full name",
        "family_name" => "Your family name",
        "given_name" => "Your given name",
        "middle_name" => "Your middle name",
        "nickname" => "Your nickname",
        "preferred_username" => "Your username",
        "profile" => "The address of your profile page",
        "picture" => "Your picture",
        "website" => "Your website",
        "gender" => "Your gender",
        "birthdate" => "Your date of birth",
        "zoneinfo" => "Your time zone",
        "locale" => "Your language and region",
        "updated_at" => "When your profile last changed",
        "email" => "Your email address",
        "email_verified" => "Whether your email address is verified",
        "phone_number" => "Your phone number",
        "phone_number_verified" => "Whether your phone number is verified",
        "address" => "Your postal address",
        _ => "Information about you",
    }
}

pub use latchkey_core::domain::beyond_scopes;
