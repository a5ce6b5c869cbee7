//! Database URLs as text: which backend a URL names, and the same URL with
//! its secrets hidden. Pure string work, shared by the stores, the library
//! facade and the CLI, so that every build (SQLite-only included) redacts
//! a URL the same way and recognises a PostgreSQL URL the same way.

/// Whether `url` names a PostgreSQL server (`postgres://` or
/// `postgresql://`, in any case).
pub fn is_postgres_url(url: &str) -> bool {
    let lower = url.trim_start().to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// What replaces a hidden secret in [`redact_url`]'s output.
const HIDDEN: &str = "***";

/// Whether a URL query parameter of this name carries a secret
/// (`password`, `sslpassword`, anything with `password`, `passwd`,
/// `secret`, `token` or `key` in its name, in any case).
fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["password", "passwd", "secret", "token", "key"]
        .iter()
        .any(|word| name.contains(word))
}

/// Where the authority of `rest` (a URL after its scheme) ends when it
/// carries a user and password: the `@` that separates them from the host.
/// Returns `(end of the user name, position of that '@')`, or `None` when
/// `rest` has no password.
///
/// A password may hold `@`, `?`, `/`, `:` or `#` unescaped (a common
/// mistake), so the separating `@` is the last one followed by something
/// that looks like a host, not the first.
pub fn password_span(rest: &str) -> Option<(usize, usize)> {
    let colon = rest.find(':')?;
    let user = &rest[..colon];
    if user.contains(['/', '?', '#', '@']) {
        return None;
    }
    let after = &rest[colon + 1..];
    let looks_like_host = |h: &str| {
        let host = h.split(['/', '?', '#']).next().unwrap_or("");
        !host.contains(['=', '&', '@', ' ', '"', '\''])
    };
    let at = after
        .match_indices('@')
        .map(|(i, _)| i)
        .rev()
        .find(|&i| looks_like_host(&after[i + 1..]))?;
    Some((colon, colon + 1 + at))
}

/// Hides the values of secret query parameters (see [`is_secret_param`]).
fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if is_secret_param(k) => format!("{k}={HIDDEN}"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A database URL with every secret replaced by `***`, for logs and error
/// messages: the password of its user information (`USER:PASS@`, even when
/// the password holds `@`, `?`, `:` or `/`), and the values of query
/// parameters named like a secret (`password`, `sslpassword`, anything
/// with `password`, `secret`, `token` or `key` in its name). Also handles
/// a URL whose scheme is mistyped (`postgres//u:p@h/db`, `postgresql:u:p@h`)
/// and any text that is not a URL at all, which is returned unchanged
/// unless it looks like `USER:PASS@HOST`. This is the one redaction every
/// message that may show a database URL goes through.
///
/// ```
/// use errand_core::url::redact_url;
/// assert_eq!(redact_url("postgres://app:p@ss?w@db:5432/jobs"), "postgres://app:***@db:5432/jobs");
/// assert_eq!(redact_url("postgres://db/jobs?sslpassword=x&sslmode=require"),
///            "postgres://db/jobs?sslpassword=***&sslmode=require");
/// ```
pub fn redact_url(url: &str) -> String {
    // Where the part after the scheme starts: after "://", else after a
    // mistyped "//", else at the start (a scheme-less "USER:PASS@HOST").
    let starts = match url.find("://") {
        Some(i) => vec![i + 3],
        None => {
            let mut v = vec![0];
            if let Some(i) = url.find("//") {
                v.push(i + 2);
            }
            v
        }
    };
    let span = starts
        .into_iter()
        .find_map(|s| password_span(&url[s..]).map(|(user_end, at)| (s + user_end, s + at)));
    let (head, tail) = match span {
        Some((user_end, at)) => (format!("{}:{HIDDEN}", &url[..user_end]), &url[at..]),
        None => (String::new(), url),
    };
    // The query begins at the first '?' after the password (if any).
    match tail.split_once('?') {
        Some((before, query)) => {
            let (query, fragment) = match query.split_once('#') {
                Some((q, f)) => (q, Some(f)),
                None => (query, None),
            };
            let mut out = format!("{head}{before}?{}", redact_query(query));
            if let Some(f) = fragment {
                out.push('#');
                out.push_str(f);
            }
            out
        }
        None => format!("{head}{tail}"),
    }
}

/// `text` with every URL-like word in it passed through [`redact_url`]: for
/// messages that quote free text which may hold a database URL, such as a
/// line of a configuration file. A word is a run of characters between
/// white space and quotes; only words holding `://` or `@` are touched.
pub fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.contains("://") || word.contains('@') {
            out.push_str(&redact_url(word));
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in text.chars() {
        if c.is_whitespace() || c == '"' || c == '\'' || c == '`' {
            flush(&mut word, &mut out);
            out.push(c);
        } else {
            word.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_hides_every_secret() {
        let cases = [
            (
                "postgres://bob:s3cret@db:5432/app",
                "postgres://bob:***@db:5432/app",
            ),
            ("postgres://bob@db/app", "postgres://bob@db/app"),
            ("postgres://db/app", "postgres://db/app"),
            ("sqlite://errand.db", "sqlite://errand.db"),
            ("errand.db", "errand.db"),
            ("/tmp/a@b.db", "/tmp/a@b.db"),
            // '@', '?', ':', '/', '#' inside the password
            ("postgres://u:p@ss@host/db", "postgres://u:***@host/db"),
            ("postgres://app:S3cr?t@h:5432/db", "postgres://app:***@h:5432/db"),
            ("postgres://app:a:b/c#d@h/db", "postgres://app:***@h/db"),
            ("postgresql://u:%40x@h/db", "postgresql://u:***@h/db"),
            // secrets in the query
            (
                "postgres://bob:s3cret@db/app?password=x",
                "postgres://bob:***@db/app?password=***",
            ),
            (
                "postgres://db/app?sslmode=require&sslpassword=pw&application_name=a",
                "postgres://db/app?sslmode=require&sslpassword=***&application_name=a",
            ),
            (
                "postgres://db/app?api_Token=t&client_secret=s&sslkey=/k&x=1",
                "postgres://db/app?api_Token=***&client_secret=***&sslkey=***&x=1",
            ),
            (
                "postgres://u:pw@db/app?PASSWORD=x#frag",
                "postgres://u:***@db/app?PASSWORD=***#frag",
            ),
            // mistyped schemes and scheme-less forms
            ("postgres//u:secret@h/db", "postgres//u:***@h/db"),
            ("postgresql:u:secret@h/db", "postgresql:***@h/db"),
            ("u:secret@h/db", "u:***@h/db"),
            ("nonsense", "nonsense"),
            ("", ""),
        ];
        for (url, want) in cases {
            assert_eq!(redact_url(url), want, "{url}");
        }
        for (url, _) in cases {
            let shown = redact_url(url);
            for secret in ["s3cret", "secret", "p@ss", "S3cr?t", "pw", "%40x", "a:b/c"] {
                if url.contains(secret) && !url.starts_with("nonsense") {
                    assert!(!shown.contains(&format!(":{secret}@")), "{url}: {shown}");
                }
            }
        }
    }

    #[test]
    fn redact_text_hides_urls_in_free_text() {
        assert_eq!(
            redact_text("database = \"postgres://u:secret@h/db"),
            "database = \"postgres://u:***@h/db"
        );
        assert_eq!(redact_text("database = 5"), "database = 5");
        assert_eq!(
            redact_text("see 'postgres://h/db?password=x' and a@b.c"),
            "see 'postgres://h/db?password=***' and a@b.c"
        );
    }
}
