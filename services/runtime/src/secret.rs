//! Secrets that must never reach a log line, `--help`, a debug dump or an error message.
//!
//! A connection string or SASL password lives in a [`Secret`] from the moment it is parsed, so
//! printing it by accident prints `[redacted]`; the one place that needs the text calls
//! [`Secret::expose`]. librdkafka properties passed through with `-X` are redacted by name.

use std::fmt;
use std::str::FromStr;

/// A value that prints as `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value as soon as it is read, before anything can print it.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The text itself, for the client that needs it; never for display.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

/// Whether a librdkafka property carries a secret (`sasl.password`, `ssl.key.password`,
/// `sasl.oauthbearer.client.secret`, `ssl.key.pem`, …) or an object-storage option carries
/// one (`azure_storage_account_key`, `azure_storage_sas_key`, `aws_secret_access_key`).
pub fn is_secret_property(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "ssl.key.pem",
        "ssl_key",
        "connection",
        "sasl.oauthbearer.config",
        // object storage options: azure_storage_account_key, aws_secret_access_key, SAS
        "_key",
    ]
    .iter()
    .any(|s| k.contains(s))
}

/// A `key=value` property as it may be logged.
pub fn display_property(key: &str, value: &str) -> String {
    if is_secret_property(key) {
        format!("{key}=[redacted]")
    } else {
        format!("{key}={value}")
    }
}

/// A librdkafka property given on the command line as `key=value`; its value is kept as a
/// secret when its name says it is one.
#[derive(Clone, PartialEq, Eq)]
pub struct Property {
    /// The property's name, e.g. `sasl.username`; always printable.
    pub key: String,
    /// Its value, held as a secret whatever the name: printing goes through
    /// [`display_property`].
    pub value: Secret,
}

impl fmt::Debug for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&display_property(&self.key, self.value.expose()))
    }
}

impl FromStr for Property {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok(Property {
                key: k.trim().to_owned(),
                value: Secret::new(v),
            }),
            _ => Err(format!(
                "expected key=value, got {:?}",
                s.split('=').next().unwrap_or("")
            )),
        }
    }
}

/// Removes every secret value from a text: librdkafka quotes property values in its own
/// configuration errors, which would otherwise carry them into logs.
pub fn scrub(text: &str, properties: &[Property], secrets: &[&Secret]) -> String {
    let mut out = text.to_owned();
    let values = properties
        .iter()
        .filter(|p| is_secret_property(&p.key))
        .map(|p| &p.value)
        .chain(secrets.iter().copied());
    for v in values {
        if v.expose().len() >= 4 {
            out = out.replace(v.expose(), "[redacted]");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_secret_values_from_foreign_errors() {
        let p: Property = "sasl.password=hunter22".parse().unwrap();
        let q: Property = "linger.ms=5000".parse().unwrap();
        let cs = Secret::new("Endpoint=sb://x/;SharedAccessKey=k3y!");
        let e = "property sasl.password hunter22 bad; linger.ms 5000; Endpoint=sb://x/;SharedAccessKey=k3y!";
        let clean = scrub(e, &[p, q], &[&cs]);
        assert!(
            !clean.contains("hunter22") && !clean.contains("k3y!"),
            "{clean}"
        );
        assert!(clean.contains("5000"), "ordinary values stay");
    }

    #[test]
    fn secrets_print_redacted_in_every_form() {
        let s = Secret::new("Endpoint=sb://x/;SharedAccessKey=abc");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(&s)), "Some([redacted])");
    }

    #[test]
    fn secret_properties_are_redacted_by_name_and_others_are_not() {
        let p: Property = "sasl.password=hunter2".parse().unwrap();
        assert_eq!(format!("{p:?}"), "sasl.password=[redacted]");
        let p: Property = "sasl.oauthbearer.client.secret=x=y".parse().unwrap();
        assert!(!format!("{p:?}").contains("x=y"));
        let p: Property = "linger.ms=50".parse().unwrap();
        assert_eq!(format!("{p:?}"), "linger.ms=50");
        // A bad property's error does not echo its value.
        let e = "sasl.passwordhunter2".parse::<Property>().unwrap_err();
        assert!(e.contains("sasl.passwordhunter2"));
        let e = "=hunter2".parse::<Property>().unwrap_err();
        assert!(!e.contains("hunter2"));
    }
}
