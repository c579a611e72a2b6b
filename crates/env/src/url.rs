//! URLs shown in logs and errors, their secrets masked; user information encoded.

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

use crate::problem::MASK;

/// Query parameters whose value is a secret.
const SECRET_PARAMS: [&str; 4] = ["password", "sslpassword", "pass", "pwd"];

/// Replaces the secrets of a URL with `***` so it can be logged: the password of its user
/// information (`postgres://app:***@db/x`) and the value of a `password=` (also
/// `sslpassword`, `pass`, `pwd`) query parameter. The user name, host, port, path and the
/// other parameters stay, so an operator can tell which server is meant. Text that is not a
/// URL comes back as it is.
///
/// The user information ends at the last `@` after `://`, so a password written without
/// percent-encoding is masked whole even when it holds `/`, `?`, `#` or `@`
/// (`postgres://app:pa/ss@db/x`). A URL without user information but with an `@` further on
/// (in its path or query) may then be masked from its first `:` to that `@`: more than needed,
/// never less.
///
/// ```
/// use vitals_env::mask_url;
/// assert_eq!(mask_url("postgres://app:s3cr@t@db:5432/x"), "postgres://app:***@db:5432/x");
/// assert_eq!(mask_url("redis://db/0?password=pw&x=1"), "redis://db/0?password=***&x=1");
/// ```
#[must_use]
pub fn mask_url(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let auth_start = scheme_end + 3;
        let rest = &out[auth_start..];
        // The last `@`, not the first `/`, `?` or `#`, ends the user information: those may
        // stand unencoded in a password.
        if let Some(at) = rest.rfind('@') {
            if let Some(colon) = rest[..at].find(':') {
                out.replace_range(auth_start + colon + 1..auth_start + at, MASK);
            }
        }
    }
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let (query, fragment) = match query.find('#') {
            Some(h) => query.split_at(h),
            None => (query, ""),
        };
        let masked: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if SECRET_PARAMS.iter().any(|s| k.eq_ignore_ascii_case(s)) => {
                    format!("{k}={MASK}")
                }
                _ => pair.to_owned(),
            })
            .collect();
        out = format!("{head}{}{fragment}", masked.join("&"));
    }
    out
}

/// A value that was meant to be a URL, as it may be shown in a problem: [`mask_url`] of it
/// when it is shaped like one (`scheme://`, no white space, and nothing after `://` that could
/// be a password left unmasked), cut after the host to a plain path (`?***` for a query,
/// `/***` for a path of other characters); else only its scheme and `:***` when it begins
/// with one (`sqlite:***`), else [`MASK`].
///
/// [`mask_url`] finds a password only where a well-formed URL puts one, and gives other text
/// back as it is; a bad value (a libpq `host=db password=pw` string, a `postgres//app:pw@db`
/// typo) is exactly what a problem shows, so it is treated as a secret here.
///
/// ```
/// use vitals_env::mask_bad_url;
/// assert_eq!(mask_bad_url("mysql://root:pw@h/x"), "mysql://root:***@h/x");
/// assert_eq!(mask_bad_url("host=db user=app password=pw"), "***");
/// assert_eq!(mask_bad_url("postgres//app:pw@db/x"), "***");
/// assert_eq!(mask_bad_url("postgres:app:pw@db/x"), "postgres:***");
/// assert_eq!(mask_bad_url("redis://h/0&password=pw"), "redis://h/***");
/// ```
#[must_use]
pub fn mask_bad_url(raw: &str) -> String {
    let Some(colon) = raw.find(':') else {
        return MASK.to_owned();
    };
    let scheme = &raw[..colon];
    let is_scheme = scheme
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    if !is_scheme {
        return MASK.to_owned();
    }
    let masked = mask_url(raw);
    if raw[colon..].starts_with("://")
        && !raw.chars().any(char::is_whitespace)
        && authority_is_safe(&masked[colon + 3..])
    {
        plain_tail(&masked, colon + 3)
    } else {
        format!("{scheme}:{MASK}")
    }
}

/// A masked URL whose path, query and fragment (after the authority that starts at
/// `auth_start`) are cut to what cannot hold a secret: the path is kept when it is only
/// letters, digits and `/._-~` (a database name or number), else shown as `/***`; a query
/// and a fragment are shown as `?***` and `#***`. A value that failed to parse may put a
/// password anywhere after the host (`redis://h/0&password=pw`), where [`mask_url`] does
/// not look.
fn plain_tail(masked: &str, auth_start: usize) -> String {
    let rest = &masked[auth_start..];
    let mut out = masked[..auth_start].to_owned();
    // The user information ends at the last `@` (as in [`mask_url`]), its password masked
    // already; a user name that holds a path or query character is shown as `***`.
    let host_start = match rest.rfind('@') {
        Some(at) => {
            let user = &rest[..at];
            if user.contains(['/', '?', '#', '&', ';', '=']) {
                out.push_str(MASK);
            } else {
                out.push_str(user);
            }
            out.push('@');
            at + 1
        }
        None => 0,
    };
    let tail_at = rest[host_start..]
        .find(['/', '?', '#'])
        .map_or(rest.len(), |i| host_start + i);
    out.push_str(&rest[host_start..tail_at]);
    let tail = &rest[tail_at..];
    let path_end = tail.find(['?', '#']).unwrap_or(tail.len());
    let path = &tail[..path_end];
    if path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-~".contains(&b))
    {
        out.push_str(path);
    } else {
        out.push('/');
        out.push_str(MASK);
    }
    let after = &tail[path_end..];
    if let Some(q) = after.strip_prefix('?') {
        if !q.is_empty() {
            out.push('?');
            out.push_str(MASK);
        }
    }
    if after.contains('#') {
        out.push('#');
        out.push_str(MASK);
    }
    out
}

/// Whether the authority at the start of `rest` (a masked URL after its `://`) shows no
/// password: one in user information is masked already, so without an `@` it must be a
/// plain `host`, `host:port` or `[v6]:port`, the port all digits.
fn authority_is_safe(rest: &str) -> bool {
    if rest.contains('@') {
        return true;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let after_host = match authority.strip_prefix('[') {
        Some(v6) => match v6.find(']') {
            Some(close) => &v6[close + 1..],
            None => return false,
        },
        None => authority.find(':').map_or("", |c| &authority[c..]),
    };
    match after_host.strip_prefix(':') {
        Some(port) => port.bytes().all(|b| b.is_ascii_digit()),
        None => after_host.is_empty(),
    }
}

/// What must be escaped in a URL's user name or password (RFC 3986 `userinfo`: everything
/// but the unreserved characters).
const USERINFO: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b':')
    .add(b';')
    .add(b'<')
    .add(b'=')
    .add(b'>')
    .add(b'?')
    .add(b'@')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}')
    .add(b'!')
    .add(b'$')
    .add(b'&')
    .add(b'\'')
    .add(b'(')
    .add(b')')
    .add(b'*')
    .add(b'+')
    .add(b',');

/// Percent-encodes a user name or password for the user information of a URL.
///
/// ```
/// assert_eq!(vitals_env::encode_userinfo("p@ss word"), "p%40ss%20word");
/// ```
#[must_use]
pub fn encode_userinfo(text: &str) -> String {
    utf8_percent_encode(text, USERINFO).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_url_hides_password_in_userinfo_and_query() {
        for (url, masked) in [
            (
                "postgres://app:s3cr@t@db:5432/x",
                "postgres://app:***@db:5432/x",
            ),
            ("postgres://app@db/x", "postgres://app@db/x"),
            (
                "postgres://db/x?user=a&password=pw&sslmode=require",
                "postgres://db/x?user=a&password=***&sslmode=require",
            ),
            ("sqlite://data/app.db", "sqlite://data/app.db"),
            ("redis://user:secret@h:1/0", "redis://user:***@h:1/0"),
            ("redis://h:1/0", "redis://h:1/0"),
            (
                "rediss://h/0?PASSWORD=pw#frag",
                "rediss://h/0?PASSWORD=***#frag",
            ),
            ("not a url", "not a url"),
            ("postgres://app:pa/ss@db/x", "postgres://app:***@db/x"),
            ("redis://:p?w@h/0", "redis://:***@h/0"),
            (
                "postgres://app:p#w@db:5432/x",
                "postgres://app:***@db:5432/x",
            ),
            (
                "postgres://app:p@s/s@db/x?sslmode=require",
                "postgres://app:***@db/x?sslmode=require",
            ),
            (
                "redis://:a@b?c#d/e@h:1/0?password=pw",
                "redis://:***@h:1/0?password=***",
            ),
            ("sqlite://data/a@b.db", "sqlite://data/a@b.db"),
        ] {
            assert_eq!(mask_url(url), masked);
        }
    }

    #[test]
    fn mask_bad_url_shows_no_password_of_text_that_is_not_a_url() {
        for (raw, shown) in [
            ("host=db user=app password=hunter2", "***"),
            ("postgres//app:hunter2@db/x", "***"),
            ("postgres:/app:hunter2@db/x", "postgres:***"),
            ("postgres://app:hunter2/db", "postgres:***"),
            ("postgres://app:hunter2 @db/x", "postgres:***"),
            ("postgres://[::1:hunter2/x", "postgres:***"),
            ("hunter2", "***"),
            // Well-formed URLs keep what tells an operator which server is meant.
            ("mysql://root:hunter2@h/x", "mysql://root:***@h/x"),
            // After the host, only a plain path: a bad value may put a password anywhere.
            ("mysql://h:3306/x?password=hunter2", "mysql://h:3306/x?***"),
            ("redis://h/0&password=hunter2", "redis://h/***"),
            ("redis://h/0;hunter2", "redis://h/***"),
            ("redis://:hunter2@h:1/x", "redis://:***@h:1/x"),
            ("redis://h:1/0#hunter2", "redis://h:1/0#***"),
            ("redis://h:1/0?sslmode=x#f", "redis://h:1/0?***#***"),
            ("redis://h/0&password=hunter2@x", "redis://***@x"),
            ("mysql://[::1]:3306/x", "mysql://[::1]:3306/x"),
            ("mysql://h/x", "mysql://h/x"),
        ] {
            assert_eq!(mask_bad_url(raw), shown, "{raw}");
        }
    }

    #[test]
    fn userinfo_is_encoded_so_it_round_trips() {
        let raw = "p@ss:w/rd?#%& é";
        let enc = encode_userinfo(raw);
        assert!(enc
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)));
        let back = percent_encoding::percent_decode_str(&enc)
            .decode_utf8()
            .unwrap();
        assert_eq!(back, raw);
    }
}
