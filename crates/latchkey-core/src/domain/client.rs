use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::ParseError;

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident, $kind:literal, { $($variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $wire)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The name used on the wire, in the store and in configuration.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire),+
                }
            }

            pub fn parse(raw: &str) -> Result<Self, ParseError> {
                match raw {
                    $($wire => Ok($name::$variant),)+
                    _ => Err(ParseError::new(
                        $kind,
                        format!(
                            "`{raw}` is not one of: {}",
                            [$($wire),+].join(", ")
                        ),
                    )),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
    };
}

wire_enum!(
    /// RFC 6749 §2.1 client types.
    ClientKind, "client type", {
        Confidential => "confidential",
        Public => "public",
    }
);

wire_enum!(
    /// The grants Latchkey supports (OAuth 2.1: no implicit, no password grant).
    GrantType, "grant type", {
        AuthorizationCode => "authorization_code",
        RefreshToken => "refresh_token",
        ClientCredentials => "client_credentials",
    }
);

wire_enum!(
    /// How a client authenticates at the token endpoint (OIDC Core §9).
    TokenEndpointAuthMethod, "token endpoint auth method", {
        ClientSecretBasic => "client_secret_basic",
        ClientSecretPost => "client_secret_post",
        PrivateKeyJwt => "private_key_jwt",
        None => "none",
    }
);

wire_enum!(
    /// JWS algorithms Latchkey signs with. `EdDSA` is the Ed25519 key type (RFC 8037);
    /// RFC 9864's fully specified `Ed25519` name is accepted as its alias on input.
    SigningAlg, "signing algorithm", {
        Rs256 => "RS256",
        Es256 => "ES256",
        EdDsa => "EdDSA",
    }
);

impl SigningAlg {
    /// Parses a JOSE algorithm name, accepting `Ed25519` (RFC 9864) for `EdDSA`.
    pub fn parse_jose(raw: &str) -> Result<Self, ParseError> {
        if raw == "Ed25519" { Ok(SigningAlg::EdDsa) } else { Self::parse(raw) }
    }
}

impl ClientKind {
    /// The authentication method a new client of this kind gets unless one is chosen.
    pub fn default_auth_method(self) -> TokenEndpointAuthMethod {
        match self {
            ClientKind::Confidential => TokenEndpointAuthMethod::ClientSecretBasic,
            ClientKind::Public => TokenEndpointAuthMethod::None,
        }
    }
}

impl TokenEndpointAuthMethod {
    /// Whether this method authenticates with a shared secret Latchkey must issue.
    pub fn uses_secret(self) -> bool {
        matches!(self, Self::ClientSecretBasic | Self::ClientSecretPost)
    }

    /// Whether a client of `kind` may use this method.
    pub fn fits(self, kind: ClientKind) -> bool {
        match kind {
            ClientKind::Public => self == Self::None,
            ClientKind::Confidential => self != Self::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        for g in GrantType::ALL {
            assert_eq!(GrantType::parse(g.as_str()), Ok(*g));
        }
        let err = GrantType::parse("password").unwrap_err();
        assert!(err.reason.contains("`password` is not one of"), "{err}");
    }

    #[test]
    fn ed25519_is_an_alias_for_eddsa() {
        assert_eq!(SigningAlg::parse_jose("Ed25519"), Ok(SigningAlg::EdDsa));
        assert!(SigningAlg::parse("Ed25519").is_err());
        assert!(SigningAlg::parse_jose("HS256").is_err());
    }

    #[test]
    fn public_clients_authenticate_with_none_only() {
        assert!(TokenEndpointAuthMethod::None.fits(ClientKind::Public));
        assert!(!TokenEndpointAuthMethod::ClientSecretBasic.fits(ClientKind::Public));
        assert!(!TokenEndpointAuthMethod::None.fits(ClientKind::Confidential));
    }
}
