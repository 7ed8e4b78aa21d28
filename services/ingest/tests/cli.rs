//! The `mfagap-ingest` binary as an operator meets it: settings, secrets, endpoints.

use mfagap_testkit::{Broker, generated, http_get, unique};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn ingest() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mfagap-ingest"))
}

const SECRET: &str = "c2VjcmV0LWtleS10aGF0LW11c3Qtbm90LWxlYWs=";

#[test]
fn help_never_shows_secret_values_from_the_environment() {
    let out = ingest()
        .arg("--help")
        .env(
            "MFAGAP_EVENTHUBS_CONNECTION_STRING",
            format!("Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=l;SharedAccessKey={SECRET}"),
        )
        .env("MFAGAP_KAFKA_PROPERTIES", format!("sasl.password={SECRET}"))
        .env("MFAGAP_TOPIC", "visible-topic")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(!help.contains(SECRET), "{help}");
    assert!(help.contains("MFAGAP_EVENTHUBS_CONNECTION_STRING"));
    assert!(help.contains("visible-topic"), "ordinary values are shown");
}

#[test]
fn logs_and_errors_never_show_secrets() {
    // A connection string that cannot be parsed: the error names the problem, not the value.
    let out = ingest()
        .args(["--source", "kafka", "--listen", "127.0.0.1:0"])
        .env("MFAGAP_EVENTHUBS_CONNECTION_STRING", SECRET)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("connection string"), "{err}");
    assert!(!err.contains(SECRET), "{err}");

    // A running service with secrets everywhere, logging at debug level.
    let child = ingest()
        .args([
            "--source",
            "kafka",
            "--listen",
            "127.0.0.1:0",
            "--log",
            "debug",
        ])
        .args([
            "--bootstrap",
            "127.0.0.1:1",
            "--source-bootstrap",
            "127.0.0.1:1",
        ])
        .args(["-X", &format!("sasl.password={SECRET}")])
        .args(["-S", &format!("sasl.oauthbearer.client.secret={SECRET}")])
        .arg("--eventhubs-connection-string")
        .arg(format!(
            "Endpoint=sb://127.0.0.1/;SharedAccessKeyName=l;SharedAccessKey={SECRET};EntityPath=hub"
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    mfagap_testkit::process::signal(child.id(), mfagap_testkit::process::SIGTERM);
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("Kafka source"), "{log}");
    assert!(log.contains("sasl.password=[redacted]"), "{log}");
    assert!(!log.contains(SECRET), "{log}");
}

#[test]
fn a_config_file_sets_what_flags_do_and_endpoints_answer() {
    let b = Broker::noida().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("out");
    let dead = unique("dl");
    b.create_topic(&topic, 2).unwrap();
    b.create_topic(&dead, 1).unwrap();
    let input = generated(300, 41, 3, false);
    let addr = format!("127.0.0.1:{}", mfagap_testkit::port());
    let config = dir.path().join("ingest.toml");
    std::fs::write(
        &config,
        format!(
            "source = \"file\"\ninput = [\"-\"]\nbootstrap = \"{}\"\ntopic = \"{topic}\"\n\
             dead-letter-topic = \"{dead}\"\nlisten = \"{addr}\"\ncompression = \"none\"\n\
             [kafka-property]\n\"linger.ms\" = 5\n",
            b.bootstrap
        ),
    )
    .unwrap();
    let mut child = ingest()
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read the log as it comes, so a chatty service never blocks on a full pipe.
    let mut stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).unwrap();
        s
    });
    let mut stdin = child.stdin.take().unwrap();
    for body in &input.bodies {
        stdin.write_all(body).unwrap();
        stdin.write_all(b"\n").unwrap();
    }
    stdin.flush().unwrap();
    // While standard input stays open the service runs: its endpoints answer.
    let deadline = Instant::now() + Duration::from_secs(30);
    let ready = loop {
        if let Ok((status, _)) = http_get(&addr, "/health/ready") {
            break status;
        }
        assert!(Instant::now() < deadline, "the endpoint did not come up");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(ready, 200);
    assert_eq!(http_get(&addr, "/health/live").unwrap().0, 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, metrics) = http_get(&addr, "/metrics").unwrap();
        assert_eq!(status, 200);
        if mfagap_testkit::metric(&metrics, "mfagap_ingest_messages_total") >= 300.0 {
            break;
        }
        assert!(Instant::now() < deadline, "{metrics}");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(stdin); // end of input: the service drains and exits
    let status = child.wait().unwrap();
    let log = log.join().unwrap();
    assert!(status.success(), "{log}");
    assert!(!log.contains("retrying"), "{log}");
    let got = b.read_all(&topic).unwrap();
    assert_eq!(got.len(), input.all_emits().len());
    assert!(!b.read_all(&dead).unwrap().is_empty());
}

/// Every form a secret can be given in, and every way it could come back out: clap's usage
/// errors, our own errors, a client's creation error, `--help`.
#[test]
fn no_form_of_a_secret_comes_back_in_an_error_or_in_help() {
    let run = |args: &[&str], env: &[(&str, String)]| {
        let mut cmd = ingest();
        cmd.args(args).env_remove("MFAGAP_CONFIG");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code(), text)
    };
    /// What is tried, the arguments, the environment.
    type Form<'a> = (&'a str, Vec<String>, Vec<(&'a str, String)>);
    let forms: Vec<Form> = vec![
        // A property without its `=`: nothing tells the key from the value. The secret ends
        // with a `=` of its own, which then splits it.
        (
            "-X keyvalue",
            vec!["-X".into(), format!("sasl.password{SECRET}")],
            vec![],
        ),
        (
            "-X keyvalue, a value without any '='",
            vec![
                "-X".into(),
                format!("sasl.password{}", SECRET.trim_end_matches('=')),
            ],
            vec![],
        ),
        (
            "-S keyvalue",
            vec![
                "-S".into(),
                format!("sasl.oauthbearer.client.secret{SECRET}"),
            ],
            vec![],
        ),
        (
            "a value without a key",
            vec!["-X".into(), format!("={SECRET}")],
            vec![],
        ),
        (
            "an environment list with a bad item",
            vec!["--help".into()],
            vec![(
                "MFAGAP_KAFKA_PROPERTIES",
                format!("linger.ms=5,sasl.password{SECRET}"),
            )],
        ),
        (
            "a storage option in the environment",
            vec!["--help".into()],
            vec![(
                "MFAGAP_CHECKPOINT_STORE_OPTIONS",
                format!("azure_storage_account_key={SECRET}"),
            )],
        ),
        (
            "a connection string with a bad port",
            vec![
                "--source".into(),
                "kafka".into(),
                "--listen".into(),
                "127.0.0.1:0".into(),
            ],
            vec![(
                "MFAGAP_EVENTHUBS_CONNECTION_STRING",
                format!(
                    "Endpoint=sb://ns:notaport/;SharedAccessKeyName=l;SharedAccessKey={SECRET}"
                ),
            )],
        ),
        (
            "a property librdkafka refuses, beside a secret one",
            vec![
                "--source".into(),
                "kafka".into(),
                "--source-bootstrap".into(),
                "127.0.0.1:1".into(),
                "--source-topic".into(),
                "t".into(),
                "--listen".into(),
                "127.0.0.1:0".into(),
                "-S".into(),
                format!("sasl.password={SECRET}"),
                "-S".into(),
                "no.such.property=visible".into(),
            ],
            vec![],
        ),
        (
            "a misspelt secret property, which librdkafka refuses and quotes",
            vec![
                "--source".into(),
                "kafka".into(),
                "--source-bootstrap".into(),
                "127.0.0.1:1".into(),
                "--source-topic".into(),
                "t".into(),
                "--listen".into(),
                "127.0.0.1:0".into(),
                "-S".into(),
                format!("sasl.pasword={SECRET}"),
            ],
            vec![],
        ),
    ];
    let bare = SECRET.trim_end_matches('=');
    for (what, args, env) in &forms {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, text) = run(&args, env);
        assert!(!text.contains(bare), "{what}: {text}");
        assert!(!text.is_empty(), "{what}: something was said");
        if !args.contains(&"--help") {
            assert_ne!(code, Some(0), "{what} is refused: {text}");
        }
    }

    // A config file: a secret property and one librdkafka refuses.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ingest.toml");
    std::fs::write(
        &file,
        format!(
            "source = \"kafka\"\nsource-bootstrap = \"127.0.0.1:1\"\nsource-topic = \"t\"\nlisten = \"127.0.0.1:0\"\n[source-property]\n\"sasl.password\" = \"{SECRET}\"\n\"no.such.property\" = \"x\"\n"
        ),
    )
    .unwrap();
    let (code, text) = run(&["--config", file.to_str().unwrap()], &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("no.such.property"), "{text}");
    assert!(!text.contains(SECRET), "{text}");
}
