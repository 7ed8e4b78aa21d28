//! Serves a JSON Lines file from the Event Hubs test double, for manual runs and benchmarks.
//!
//! ```text
//! eventhubs-double [--port N] [--partitions N] [--event-hub NAME] [--namespace NAME]
//!                  [--key-name NAME] [--key KEY] [--input FILE]
//! ```
//!
//! Prints the endpoint and connection strings, then serves until killed.

use anyhow::{Context, Result, bail};
use mfagap_testkit::{EventHubsConfig, EventHubsDouble};

fn main() -> Result<()> {
    let mut config = EventHubsConfig::default();
    let mut input = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--port" => config.port = value()?.parse().context("--port")?,
            "--partitions" => config.partition_count = value()?.parse().context("--partitions")?,
            "--event-hub" => config.event_hub = value()?,
            "--namespace" => config.namespace = value()?,
            "--key-name" => config.key_name = value()?,
            "--key" => config.key = value()?,
            "--input" => input = Some(value()?),
            "-h" | "--help" => {
                println!(
                    "eventhubs-double [--port N] [--partitions N] [--event-hub NAME] [--namespace NAME] [--key-name NAME] [--key KEY] [--input FILE]"
                );
                return Ok(());
            }
            other => bail!("unknown flag {other}"),
        }
    }
    let double = EventHubsDouble::start(config)?;
    let events = match input {
        Some(path) => double.append_lines(&path)?,
        None => 0,
    };
    println!("endpoint={}", double.endpoint());
    println!("namespace={}", double.namespace());
    println!("event_hub={}", double.event_hub());
    println!("connection_string={}", double.connection_string(true));
    println!(
        "emulator_connection_string={}",
        double.emulator_connection_string()
    );
    eprintln!(
        "serving {events} events on {} partitions; stop with Ctrl-C",
        double.partition_count()
    );
    loop {
        std::thread::park();
    }
}
