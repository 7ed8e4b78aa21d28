//! The `mfagap-archiver` binary's refusals: settings it cannot work with end the process at
//! once with a message that says why, and never with a secret in it.

use std::process::Command;

fn archiver() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mfagap-archiver"))
}

fn run(cmd: &mut Command) -> (i32, String) {
    let out = cmd.env_remove("MFAGAP_CONFIG").output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn an_unsupported_storage_scheme_is_refused_by_name() {
    let (code, text) = run(archiver().args(["--data", "ftp://host/x", "--listen", "127.0.0.1:0"]));
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("unsupported storage scheme ftp"), "{text}");
}

#[test]
fn a_storage_secret_never_appears_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (code, text) = run(archiver()
        .arg("--data")
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0"])
        .args(["-O", "azure_storage_account_key=S3CRETVALUE"]));
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("storage-option"), "{text}");
    assert!(!text.contains("S3CRETVALUE"), "{text}");
}

#[test]
fn an_unknown_key_in_the_config_file_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("archiver.toml");
    std::fs::write(&file, "roll-rows = 10\nrole-bytes = \"1MiB\"\n").unwrap();
    let (code, text) = run(archiver().arg("--config").arg(&file));
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("role-bytes"), "{text}");
}

#[test]
fn the_config_file_sets_flags_and_bad_values_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("archiver.toml");
    std::fs::write(&file, "roll-bytes = \"12 parsecs\"\n").unwrap();
    let (code, text) = run(archiver().arg("--config").arg(&file));
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("parsecs"), "{text}");
}

#[test]
fn help_lists_the_roll_and_storage_settings() {
    let out = Command::new(env!("CARGO_BIN_EXE_mfagap-archiver"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--roll-rows",
        "--roll-bytes",
        "--roll-age",
        "--max-buffered",
        "--storage-option",
        "MFAGAP_DATA",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
}

/// What the archiver exports is its own: the dead-letter producer's series carry the
/// archiver's prefix, and no series of the ingest service appears.
#[test]
fn every_series_the_archiver_exports_is_named_for_the_archiver() {
    use mfagap_testkit::{Broker, http_get, metric, unique};
    use std::time::{Duration, Instant};
    let broker = Broker::noida().unwrap();
    let topic = unique("names");
    broker.create_topic(&topic, 1).unwrap();
    let dl = unique("names-dl");
    broker.create_topic(&dl, 1).unwrap();
    let mut bodies = mfagap_testkit::output_records(3, 5, "names");
    bodies.push(b"not a record".to_vec());
    broker.produce(&topic, 1, &bodies).unwrap();
    let data = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", mfagap_testkit::port());
    let mut child = archiver()
        .env_remove("MFAGAP_CONFIG")
        .args(["--bootstrap", &broker.bootstrap, "--topic", &topic])
        .args(["--dead-letter-topic", &dl, "--listen", &addr])
        .args(["--group", &unique("names-group"), "--roll-age", "1s"])
        .arg("--data")
        .arg(data.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let text = loop {
        assert!(Instant::now() < deadline, "the archiver never published");
        std::thread::sleep(Duration::from_millis(200));
        let Ok((200, text)) = http_get(&addr, "/metrics") else {
            continue;
        };
        if metric(&text, "mfagap_archiver_rows_total") >= 3.0
            && metric(&text, "mfagap_archiver_produced_total") >= 1.0
        {
            break text;
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    let names: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap())
        .collect();
    assert!(
        names.contains("mfagap_archiver_produced_total")
            && names.contains("mfagap_archiver_produce_latency_seconds_bucket"),
        "the dead-letter producer counts under the archiver's name: {names:?}"
    );
    let foreign: Vec<&&str> = names
        .iter()
        .filter(|n| !n.starts_with("mfagap_archiver_"))
        .collect();
    assert!(
        foreign.is_empty(),
        "series not named for the archiver: {foreign:?}"
    );
}
