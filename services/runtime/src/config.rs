//! Settings from three places, one table of names: flags, `MFAGAP_…` variables, a TOML file.
//!
//! Precedence is flag, then environment, then `--config` file. The file is applied by turning
//! each of its keys into the matching environment variable (when that variable is not already
//! set) before the flags are parsed, so each flag's `env` is the only table of names and
//! `--help` documents every one of them. Each command passes the lookup of its own flags
//! ([`env_of_flag`]); `mfagap run`, which hosts both services, chains theirs.

use anyhow::{Context, Result, bail};
use std::ffi::OsString;
use std::path::PathBuf;

/// Finds `--config FILE` (or `MFAGAP_CONFIG`) in the arguments and applies the file's keys as
/// environment defaults, looking each key up with `env_of`. Must run before any thread is
/// started. An unknown key is an error that names it.
pub fn apply_config_file_with(
    args: &[OsString],
    env_of: &dyn Fn(&str) -> Option<String>,
) -> Result<()> {
    let mut path = std::env::var_os("MFAGAP_CONFIG").map(PathBuf::from);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let a = a.to_string_lossy();
        if a == "--config" {
            path = it.next().map(PathBuf::from);
        } else if let Some(p) = a.strip_prefix("--config=") {
            path = Some(PathBuf::from(p));
        }
    }
    let Some(path) = path else {
        return Ok(());
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    for (key, value) in
        config_env(&text).with_context(|| format!("in the config file {}", path.display()))?
    {
        let Some(name) = env_of(&key) else {
            bail!(
                "unknown setting {key:?} in the config file {}",
                path.display()
            );
        };
        if std::env::var_os(&name).is_none() {
            // SAFETY: called at the start of main, before any other thread exists.
            #[allow(unsafe_code)]
            unsafe {
                std::env::set_var(&name, value)
            };
        }
    }
    Ok(())
}

/// The environment variable of a flag of a settings struct, by its long name
/// (`dead-letter-topic` or `dead_letter_topic`), as the flag itself declares it.
pub fn env_of_flag<A: clap::Args>(key: &str) -> Option<String> {
    let cmd = A::augment_args(clap::Command::new("settings"));
    let key = key.replace('_', "-");
    cmd.get_arguments()
        .find(|a| a.get_long() == Some(key.as_str()))
        .and_then(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
}

/// The settings of a config file, as (flag name, value) pairs: arrays are joined with commas;
/// a table (e.g. `[kafka-property]`) gives `key=value` items.
pub fn config_env(text: &str) -> Result<Vec<(String, String)>> {
    let table: toml::Table = text.parse().context("not valid TOML")?;
    let mut out = Vec::new();
    for (name, value) in table {
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(scalar)
                .collect::<Result<Vec<_>>>()?
                .join(","),
            toml::Value::Table(t) => t
                .iter()
                .map(|(k, v)| Ok(format!("{k}={}", scalar(v)?)))
                .collect::<Result<Vec<_>>>()?
                .join(","),
            toml::Value::Datetime(d) => d.to_string(),
        };
        out.push((name, text));
    }
    Ok(out)
}

fn scalar(v: &toml::Value) -> Result<String> {
    Ok(match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        _ => bail!("only strings, numbers and booleans can be listed"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, clap::Args)]
    struct Flags {
        #[arg(long, env = "MFAGAP_SOURCE")]
        source: Option<String>,
        #[arg(long, env = "MFAGAP_DEAD_LETTER_TOPIC")]
        dead_letter_topic: Option<String>,
        #[arg(short = 'X', long = "kafka-property", env = "MFAGAP_KAFKA_PROPERTIES")]
        kafka_properties: Vec<String>,
    }

    #[test]
    fn config_keys_become_values_of_the_flags_variables() {
        let env = config_env(
            r#"
            source = "file"
            dead-letter-topic = "dl"
            max_in_flight = 10
            include-service-principals = true
            input = ["a.jsonl", "b.jsonl"]
            [kafka-property]
            "linger.ms" = 5
            "sasl.password" = "pw"
            "#,
        )
        .unwrap();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("source"), Some("file"));
        assert_eq!(get("max_in_flight"), Some("10"));
        assert_eq!(get("include-service-principals"), Some("true"));
        assert_eq!(get("input"), Some("a.jsonl,b.jsonl"));
        assert_eq!(get("kafka-property"), Some("linger.ms=5,sasl.password=pw"));
        assert_eq!(
            env_of_flag::<Flags>("dead_letter_topic").as_deref(),
            Some("MFAGAP_DEAD_LETTER_TOPIC")
        );
        assert_eq!(
            env_of_flag::<Flags>("kafka-property").as_deref(),
            Some("MFAGAP_KAFKA_PROPERTIES")
        );
        assert_eq!(env_of_flag::<Flags>("no-such-setting"), None);
    }

    #[test]
    fn a_bad_config_file_is_a_clear_error() {
        assert!(config_env("source = ").is_err());
        assert!(config_env("x = [[1]]").is_err());
    }
}
