//! Secrets kept out of what people and logs see.

/// A database URL with any password replaced, safe for logs and messages.
pub fn redact_url(url: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let mut out = match (base.find("://"), base.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => match base[scheme_end + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:****{}", &base[..scheme_end + 3], &base[at..]),
            None => base.to_owned(),
        },
        _ => base.to_owned(),
    };
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") || k.eq_ignore_ascii_case("sslpassword") => {
                    format!("{k}=****")
                }
                _ => p.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(super::redact_url("postgres://u:secret@h/db"), "postgres://u:****@h/db");
        assert_eq!(super::redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(super::redact_url("sqlite:x.db"), "sqlite:x.db");
        assert_eq!(
            super::redact_url("postgres://u@h/db?sslmode=require&password=s3cret"),
            "postgres://u@h/db?sslmode=require&password=****"
        );
    }
}
