//! An S3-compatible server for the archiver's S3 test: moto's server, which `scripts/setup.sh`
//! installs as `.tools/bin/moto-server`. It implements conditional writes (`If-None-Match`),
//! which the archiver's commit protocol needs from any store.

use crate::repo_root;
use anyhow::{Context, Result, bail};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running server; stopped when dropped.
pub struct S3Server {
    port: u16,
    child: Child,
    _log: tempfile::TempDir,
}

impl S3Server {
    /// Starts the server on a free port and waits until it answers.
    pub fn start() -> Result<S3Server> {
        let port = crate::port();
        let dir = tempfile::tempdir()?;
        let log = std::fs::File::create(dir.path().join("moto.log"))?;
        let bin = repo_root().join(".tools/bin/moto-server");
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot run {}: run scripts/setup.sh", bin.display()))?;
        let s = S3Server {
            port,
            child,
            _log: dir,
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err() {
            if Instant::now() > deadline {
                bail!("the S3 server did not listen on {addr}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(s)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Storage options (`-O key=value`) that reach this server with test credentials.
    pub fn options(&self) -> Vec<String> {
        vec![
            format!("aws_endpoint={}", self.endpoint()),
            "aws_allow_http=true".into(),
            "aws_access_key_id=test".into(),
            "aws_secret_access_key=test".into(),
            "aws_region=us-east-1".into(),
            "aws_virtual_hosted_style_request=false".into(),
        ]
    }

    /// Creates a bucket (the server accepts unsigned requests).
    pub fn create_bucket(&self, name: &str) -> Result<()> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            s,
            "PUT /{name} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )?;
        let mut answer = String::new();
        s.read_to_string(&mut answer)?;
        if !answer.starts_with("HTTP/1.1 200") {
            bail!("cannot create bucket {name}: {answer}");
        }
        Ok(())
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
