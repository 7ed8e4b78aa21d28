//! `mfagap archive` is the archiver service (its end-to-end tests are in
//! `services/archiver/tests/`): the subcommand exists and takes the service's settings.

use std::process::Command;

#[test]
fn mfagap_archive_takes_the_archiver_settings() {
    let out = Command::new(env!("CARGO_BIN_EXE_mfagap"))
        .args(["archive", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("--roll-rows") && help.contains("--data"),
        "{help}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_mfagap"))
        .env_remove("MFAGAP_CONFIG")
        .args(["archive", "--data", "ftp://x/y", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported storage scheme"));
}
