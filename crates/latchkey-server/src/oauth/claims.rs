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

/// What the consent page says each user claim is; any other is [`OTHER_CLAIM`].
const DESCRIPTIONS: [(&str, &str); 19] = [
    ("name", "Your full name"),
    ("family_name", "Your family name"),
    ("given_name", "Your given name"),
    ("middle_name", "Your middle name"),
    ("nickname", "Your nickname"),
    ("preferred_username", "Your username"),
    ("profile", "The address of your profile page"),
    ("picture", "Your picture"),
    ("website", "Your website"),
    ("gender", "Your gender"),
    ("birthdate", "Your date of birth"),
    ("zoneinfo", "Your time zone"),
    ("locale", "Your language and region"),
    ("updated_at", "When your profile last changed"),
    ("email", "Your email address"),
    ("email_verified", "Whether your email address is verified"),
    ("phone_number", "Your phone number"),
    ("phone_number_verified", "Whether your phone number is verified"),
    ("address", "Your postal address"),
];
const OTHER_CLAIM: &str = "Information about you";

/// A fingerprint of the consent page's own text: its template and every claim description
/// it can show. A change to either asks every user again ([`latchkey_service::consents`]).
pub fn consent_page_fingerprint() -> String {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(crate::templates::CONSENT_PAGE.as_bytes());
    for (claim, description) in DESCRIPTIONS.iter().chain(&[("(other)", OTHER_CLAIM)]) {
        ctx.update(format!("\n{claim}: {description}").as_bytes());
    }
    hex::encode(ctx.finish().as_ref())
}

/// What the consent page says a user claim is.
pub fn describe(name: &str) -> &'static str {
    DESCRIPTIONS.iter().find(|(n, _)| *n == name).map_or(OTHER_CLAIM, |(_, d)| d)
}

pub use latchkey_core::domain::beyond_scopes;
