//! AMQP URIs: `amqp://user:pass@host:port/vhost`.
//!
//! Parsed by hand (a few lines) rather than with a URL crate. Unlike the strict
//! RabbitMQ URI spec, an empty path also means the default vhost `/`, since an
//! empty vhost name is never what a benchmark wants.

/// Where and as whom to connect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uri {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// User name for PLAIN authentication.
    pub user: String,
    /// Password for PLAIN authentication.
    pub password: String,
    /// Virtual host.
    pub vhost: String,
}

impl std::str::FromStr for Uri {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let rest = s
            .strip_prefix("amqp://")
            .ok_or_else(|| format!("{s}: only amqp:// URIs are supported"))?;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            Some(u) => {
                let (user, pass) = u.split_once(':').unwrap_or((u, ""));
                (decode(user)?, decode(pass)?)
            }
            None => ("guest".to_string(), "guest".to_string()),
        };
        let (host, port) = match hostport.strip_prefix('[') {
            Some(v6) => {
                let (h, rest) = v6
                    .split_once(']')
                    .ok_or_else(|| format!("{s}: unclosed ["))?;
                (h, rest.strip_prefix(':'))
            }
            None => match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            },
        };
        let port = match port {
            Some(p) => p.parse().map_err(|_| format!("{s}: bad port {p:?}"))?,
            None => 5672,
        };
        if host.is_empty() {
            return Err(format!("{s}: no host"));
        }
        let vhost = if path.is_empty() {
            "/".to_string()
        } else {
            decode(path)?
        };
        Ok(Uri {
            host: host.to_string(),
            port,
            user,
            password,
            vhost,
        })
    }
}

/// Undoes %XX escapes.
fn decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad escape in {s:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 once unescaped"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_and_minimal_uris() {
        let u: Uri = "amqp://bob:p%40ss@10.0.0.1:5680/%2Fprod".parse().unwrap();
        assert_eq!(
            u,
            Uri {
                host: "10.0.0.1".into(),
                port: 5680,
                user: "bob".into(),
                password: "p@ss".into(),
                vhost: "/prod".into(),
            }
        );
        let u: Uri = "amqp://localhost".parse().unwrap();
        assert_eq!(
            (u.port, u.user.as_str(), u.vhost.as_str()),
            (5672, "guest", "/")
        );
        let u: Uri = "amqp://[::1]:5673/v".parse().unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.vhost.as_str()),
            ("::1", 5673, "v")
        );
        let u: Uri = "amqp://[::1]".parse().unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 5672));
        assert!("http://x".parse::<Uri>().is_err());
        assert!("amqp://h:port".parse::<Uri>().is_err());
    }
}
