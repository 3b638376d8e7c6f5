//! Time-based one-time passwords (RFC 6238): SHA-1, 6 digits, 30-second steps, one step of
//! skew either way — what every authenticator app understands. Codes are computed by
//! `totp-rs`; that a step is used only once is the store's job (it keeps the last used step).

use qrcode::QrCode;
use qrcode::render::svg;
use totp_rs::{Builder, Secret, Totp};

use super::random;

pub const STEP_SECONDS: u64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum TotpError {
    #[error("the TOTP secret is unusable: {0}")]
    Secret(String),
    #[error("cannot draw the QR code: {0}")]
    Qr(String),
}

/// A user's TOTP secret (160 bits, as RFC 4226 recommends).
#[derive(Clone)]
pub struct TotpSecret(Vec<u8>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(..)")
    }
}

/// `:` separates issuer and account in an otpauth label, so neither may contain one.
fn label_part(s: &str) -> String {
    s.replace(':', " ").trim().to_owned()
}

impl TotpSecret {
    pub fn generate() -> Self {
        Self(random::bytes::<20>().to_vec())
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// A secret typed in as base32 (as authenticator apps show it).
    pub fn from_base32(text: &str) -> Option<Self> {
        Secret::try_from_base32(text.trim()).ok().map(|s| Self(s.as_bytes().to_vec()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The secret as authenticator apps take it typed in: base32, no padding.
    pub fn to_base32(&self) -> String {
        Secret::new(self.0.clone().into_boxed_slice()).to_base32()
    }

    fn totp(&self, issuer: &str, account: &str) -> Result<Totp, TotpError> {
        Builder::new()
            .with_secret(Secret::new(self.0.clone().into_boxed_slice()))
            .with_step_duration(STEP_SECONDS)
            .with_issuer(Some(label_part(issuer)))
            .with_account_name(label_part(account))
            .build()
            .map_err(|e| TotpError::Secret(e.to_string()))
    }

    /// The `otpauth://totp/...` URI an authenticator app scans.
    pub fn provisioning_uri(&self, issuer: &str, account: &str) -> Result<String, TotpError> {
        self.totp(issuer, account)?.to_url().map_err(|e| TotpError::Secret(e.to_string()))
    }

    /// The provisioning URI as an SVG QR code, drawn here (no outside service sees it).
    pub fn qr_svg(&self, issuer: &str, account: &str) -> Result<String, TotpError> {
        let uri = self.provisioning_uri(issuer, account)?;
        let code = QrCode::new(uri.as_bytes()).map_err(|e| TotpError::Qr(e.to_string()))?;
        Ok(code.render::<svg::Color<'_>>().min_dimensions(200, 200).quiet_zone(true).build())
    }

    /// The step a code is valid for at `unix_seconds` (the current step or one either
    /// side), or `None`. The caller must refuse a step already used.
    pub fn check(&self, code: &str, unix_seconds: u64) -> Option<u64> {
        let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        if code.len() != 6 || !code.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let totp = self.totp("latchkey", "user").ok()?;
        totp.check(&code, unix_seconds)
    }

    /// The code for `unix_seconds` (for tests and for nothing else in the server).
    pub fn code_at(&self, unix_seconds: u64) -> Option<String> {
        Some(self.totp("latchkey", "user").ok()?.generate(unix_seconds).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6238_sha1_test_vector() {
        // RFC 6238 Appendix B, SHA-1, T = 59: 94287082 (8 digits); 6 digits is its tail.
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
        assert_eq!(secret.code_at(59).as_deref(), Some("287082"));
        assert_eq!(secret.check("287082", 59), Some(1));
        assert_eq!(secret.check("287 082", 59 + 30), Some(1), "one step of skew, spaces ignored");
        assert_eq!(secret.check("287082", 59 + 90), None);
        assert_eq!(secret.check("28708", 59), None);
        assert_eq!(secret.check("abcdef", 59), None);
    }

    #[test]
    fn provisioning_uri_and_qr_code() {
        let secret = TotpSecret::generate();
        let uri = secret.provisioning_uri("Latch:key", "alice").unwrap_or_default();
        assert!(uri.starts_with("otpauth://totp/"), "{uri}");
        assert!(uri.contains(&format!("secret={}", secret.to_base32())), "{uri}");
        let svg = secret.qr_svg("Latchkey", "alice").unwrap_or_default();
        assert!(svg.contains("<svg") && svg.contains("</svg>"), "{svg}");
        assert!(!format!("{secret:?}").contains(&secret.to_base32()));
        let typed = TotpSecret::from_base32(&secret.to_base32()).map(|s| s.as_bytes().to_vec());
        assert_eq!(typed.as_deref(), Some(secret.as_bytes()));
    }
}
