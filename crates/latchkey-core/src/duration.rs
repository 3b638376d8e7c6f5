//! Human durations in configuration (`"90d"`, `"5m"`, `"500ms"`).

use std::time::Duration;

/// Parses a duration such as `90d`, `12h`, `5m`, `30s` or `500ms` (also `1h 30m`).
pub fn parse(raw: &str) -> Result<Duration, String> {
    humantime::parse_duration(raw.trim())
        .map_err(|e| format!("`{raw}` is not a duration ({e}); write e.g. \"30s\", \"5m\", \"12h\", \"90d\""))
}

/// The shortest exact form of a duration, in the units `parse` reads back.
pub fn format(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    for (unit, size) in [("d", 86_400u128), ("h", 3_600), ("m", 60)] {
        if s.is_multiple_of(size) {
            return format!("{}{unit}", s / size);
        }
    }
    format!("{s}s")
}

/// Serde helpers for `Duration` fields written as human durations.
pub mod serde_human {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let raw = String::deserialize(d)?;
        super::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_round_trip() {
        for raw in ["90d", "12h", "5m", "30s", "500ms", "0s"] {
            let d = parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(format(d), raw);
        }
        assert_eq!(parse("1h 30m").map(format), Ok("90m".into()));
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        let err = parse("soon").unwrap_err();
        assert!(err.contains("`soon` is not a duration"), "{err}");
        assert!(parse("10").is_err(), "a bare number has no unit");
    }
}
