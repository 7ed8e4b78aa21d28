//! The test command itself: under CI it refuses the switches that would make checks pass
//! without checking.

use std::process::Command;

#[test]
fn the_test_command_refuses_rewrite_switches_and_an_external_broker_under_ci() {
    let root = mfagap_testkit::repo_root();
    for (var, value) in [
        ("MFAGAP_UPDATE_GOLDEN", "1"),
        ("MFAGAP_README_BLESS", "1"),
        ("KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
    ] {
        let out = Command::new(root.join("scripts/test.sh"))
            .env("CI", "1")
            .env_remove("MFAGAP_UPDATE_GOLDEN")
            .env_remove("MFAGAP_README_BLESS")
            .env_remove("KAFKA_BOOTSTRAP")
            .env(var, value)
            .output()
            .expect("run scripts/test.sh");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}: {err}");
        assert!(err.contains(var), "{var}: {err}");
        assert!(
            !err.contains("== cargo"),
            "{var}: refused before anything runs: {err}"
        );
    }
}
