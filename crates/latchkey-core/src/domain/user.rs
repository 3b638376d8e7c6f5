use serde::{Deserialize, Serialize};

use super::ParseError;

/// A person's display name (the OIDC `name` claim): 1–200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let t = raw.trim();
        if t.is_empty() || t.chars().count() > 200 || t.chars().any(char::is_control) {
            return Err(ParseError::new("display name", "use 1-200 characters without control characters"));
        }
        Ok(Self(t.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DisplayName {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        Self::parse(&s)
    }
}

impl From<DisplayName> for String {
    fn from(d: DisplayName) -> String {
        d.0
    }
}

/// OIDC Core §5.1.1 address claim.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Address {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub formatted: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub street_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locality: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

/// The standard OIDC profile claims (Core §5.1) beyond username, email and name, kept
/// together because they travel together (stored as one document, released by scope).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileClaims {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub middle_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nickname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub picture: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub birthdate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zoneinfo: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    #[serde(default)]
    pub phone_number_verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
}

impl ProfileClaims {
    /// The OIDC names of these claims (OIDC Core §5.1), as [`Self::set`] and JSON know them.
    pub const NAMES: [&str; 14] = [
        "given_name",
        "family_name",
        "middle_name",
        "nickname",
        "profile",
        "picture",
        "website",
        "gender",
        "birthdate",
        "zoneinfo",
        "locale",
        "phone_number",
        "phone_number_verified",
        "address",
    ];

    /// Sets one claim by its OIDC name, as the CLI's `--claim name=value` does.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), ParseError> {
        let v = if value.is_empty() { None } else { Some(value.to_owned()) };
        let slot = match name {
            "given_name" => &mut self.given_name,
            "family_name" => &mut self.family_name,
            "middle_name" => &mut self.middle_name,
            "nickname" => &mut self.nickname,
            "profile" => &mut self.profile,
            "picture" => &mut self.picture,
            "website" => &mut self.website,
            "gender" => &mut self.gender,
            "birthdate" => &mut self.birthdate,
            "zoneinfo" => &mut self.zoneinfo,
            "locale" => &mut self.locale,
            "phone_number" => &mut self.phone_number,
            "phone_number_verified" => {
                self.phone_number_verified = match value {
                    "true" => true,
                    "false" | "" => false,
                    _ => {
                        return Err(ParseError::new("claim", "phone_number_verified is true or false"));
                    }
                };
                return Ok(());
            }
            "address" => {
                self.address = if value.is_empty() {
                    None
                } else {
                    Some(Address { formatted: Some(value.to_owned()), ..Address::default() })
                };
                return Ok(());
            }
            other => {
                return Err(ParseError::new(
                    "claim",
                    format!("`{other}` is not a standard profile claim (OIDC Core §5.1)"),
                ));
            }
        };
        *slot = v;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_set_by_name_and_unknown_names_refused() {
        let mut p = ProfileClaims::default();
        assert!(p.set("given_name", "Ada").is_ok());
        assert!(p.set("phone_number_verified", "true").is_ok());
        assert_eq!(p.given_name.as_deref(), Some("Ada"));
        assert!(p.phone_number_verified);
        assert!(p.set("shoe_size", "9").is_err());
        assert!(p.set("phone_number_verified", "yes").is_err());
    }

    #[test]
    fn display_names_are_trimmed_and_bounded() {
        assert_eq!(DisplayName::parse("  Ada Lovelace ").map(|d| d.0), Ok("Ada Lovelace".into()));
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse("a\u{0}b").is_err());
    }
}
