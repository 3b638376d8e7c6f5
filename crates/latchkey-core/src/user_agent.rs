//! "Firefox on Linux" from a User-Agent header: a description for people, not a parser. It
//! is also what `privacy.user_agent = "truncated"` keeps of a session's user agent, so a
//! description passes through unchanged.

const BROWSERS: [(&str, &str); 5] =
    [("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"), ("Safari/", "Safari")];
const SYSTEMS: [(&str, &str); 7] = [
    ("Android", "Android"),
    ("iPhone", "iOS"),
    ("iPad", "iPadOS"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
];
const UNKNOWN_BROWSER: &str = "Unknown browser";
const UNKNOWN_SYSTEM: &str = "an unknown system";

pub fn describe(ua: Option<&str>) -> String {
    let Some(ua) = ua else { return "Unknown device".into() };
    if is_description(ua) {
        return ua.to_owned();
    }
    let browser = BROWSERS.iter().find(|(needle, _)| ua.contains(needle)).map_or(UNKNOWN_BROWSER, |(_, name)| name);
    let system = SYSTEMS.iter().find(|(needle, _)| ua.contains(needle)).map_or(UNKNOWN_SYSTEM, |(_, name)| name);
    format!("{browser} on {system}")
}

/// Whether `text` is a description [`describe`] made.
fn is_description(text: &str) -> bool {
    text.split_once(" on ").is_some_and(|(browser, system)| {
        (browser == UNKNOWN_BROWSER || BROWSERS.iter().any(|(_, name)| *name == browser))
            && (system == UNKNOWN_SYSTEM || SYSTEMS.iter().any(|(_, name)| *name == system))
    })
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn user_agents_are_described_for_people_and_a_description_stays_one() {
        let chrome =
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36";
        assert_eq!(describe(Some(chrome)), "Chrome on Linux");
        let safari =
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Version/17.5 Safari/604.1";
        assert_eq!(describe(Some(safari)), "Safari on iOS");
        assert_eq!(describe(Some("curl/8")), "Unknown browser on an unknown system");
        assert_eq!(describe(None), "Unknown device");
        for d in ["Chrome on Linux", "Unknown browser on an unknown system", "Edge on Windows"] {
            assert_eq!(describe(Some(d)), d);
        }
        assert_eq!(describe(Some("Evil on Mars")), "Unknown browser on an unknown system");
    }
}
