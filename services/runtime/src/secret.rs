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
///
/// Conservative on purpose: any name with a fragment of a secret's name counts, so that a
/// misspelt `sasl.pasword` is redacted too; a path such as `ssl.key.location` is hidden for
/// nothing, which costs less than a password in a log.
pub fn is_secret_property(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "pass",
        "pwd",
        "secret",
        "token",
        "key",
        "cred",
        "connection",
        "sas",
        "sig",
        "pem",
        "auth",
        "jaas",
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

    /// `key=value`. An error never quotes the text: without its `=`, nothing tells a key from
    /// a value, and `sasl.passwordhunter2` holds a password.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('=') {
            // `sasl.passwordhunter2=` (a value that holds a `=` itself, the `=` of the
            // property forgotten) would make the secret the name: names are checked, and a
            // bad one is not quoted either.
            Some((k, _)) if !is_property_name(k.trim()) => Err(
                "expected key=value with a lowercase name of letters, digits, '.', '_' and '-' (the text is not shown: was the '=' forgotten?)"
                    .into(),
            ),
            Some((k, v)) if !k.trim().is_empty() => Ok(Property {
                key: k.trim().to_owned(),
                value: Secret::new(v),
            }),
            Some(_) => Err("expected key=value, got a value without a key (not shown)".into()),
            None => Err(format!(
                "expected key=value, got {} characters without '=' (not shown: they may hold a secret)",
                s.chars().count()
            )),
        }
    }
}

/// Whether `name` can be the name of a librdkafka property or an object-storage option: short,
/// lowercase, dotted or underscored. A secret glued to a name fails this.
fn is_property_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

/// Parses `--…-property key=value` flags for clap without ever echoing the text: clap's own
/// message for a value it cannot parse quotes the value.
#[derive(Debug, Clone, Copy, Default)]
pub struct PropertyParser;

impl clap::builder::TypedValueParser for PropertyParser {
    type Value = Property;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Property, clap::Error> {
        let flag = arg.map_or_else(|| "a property".to_owned(), |a| a.to_string());
        let fail = |why: String| {
            clap::Error::raw(
                clap::error::ErrorKind::InvalidValue,
                format!("invalid value for {flag}: {why}\n"),
            )
            .with_cmd(cmd)
        };
        let text = value
            .to_str()
            .ok_or_else(|| fail("not UTF-8 (not shown)".into()))?;
        text.parse().map_err(fail)
    }
}

impl clap::builder::ValueParserFactory for Property {
    type Parser = PropertyParser;

    fn value_parser() -> PropertyParser {
        PropertyParser
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
        // A bad property's error does not echo its text, whatever its form.
        for bad in [
            "sasl.passwordhunter2",
            "=hunter2",
            "hunter2",
            // A secret with a `=` of its own, the property's `=` forgotten.
            "sasl.passwordHunter2/x+y==",
        ] {
            let e = bad.parse::<Property>().unwrap_err();
            assert!(!e.to_lowercase().contains("hunter2"), "{e}");
            assert!(e.contains("key=value"), "{e}");
        }
    }
}
