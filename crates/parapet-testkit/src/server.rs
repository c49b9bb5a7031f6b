//! One `redis-server` process.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::resp;

const MISSING: &str = "redis-server was not found on PATH: run `scripts/test`, which installs it \
                       (apt-get install redis-server), or install it yourself";

/// A real `redis-server` on a free loopback port, stopped on drop.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    extra: Vec<String>,
    dir: tempfile::TempDir,
    watchdog: Option<Child>,
    /// The TLS port, when started with [`start_tls`](Self::start_tls).
    tls_port: Option<u16>,
}

impl RedisServer {
    /// Starts a standalone server. Panics (with how to fix it) if `redis-server` is missing.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// One server for the whole test binary, started on first use; its tests keep apart
    /// by key prefix. (Tests that kill or pause a server start their own.)
    pub fn shared() -> &'static RedisServer {
        static SERVER: OnceLock<RedisServer> = OnceLock::new();
        SERVER.get_or_init(Self::start)
    }

    /// Starts a server with extra `redis-server` arguments (`--cluster-enabled yes`, …).
    pub fn start_with(extra: &[&str]) -> Self {
        ensure_installed();
        for _attempt in 0..20 {
            let port = free_port();
            let mut server = Self {
                port,
                extra: extra.iter().map(|s| (*s).to_owned()).collect(),
                dir: tempfile::tempdir().expect("temp dir for redis-server"),
                watchdog: None,
                tls_port: None,
            };
            if server.launch() {
                return server;
            }
        }
        panic!("could not start redis-server on a free port after 20 attempts");
    }

    /// Starts a server that also listens with TLS, on a certificate for `localhost` and
    /// `127.0.0.1` signed by a CA made for it (with the `openssl` command, which
    /// `scripts/test` installs; clients need not present a certificate). The plain port
    /// stays for [`command`](Self::command).
    pub fn start_tls() -> Self {
        ensure_installed();
        for _attempt in 0..20 {
            let (port, tls_port) = (free_port(), free_port());
            let dir = tempfile::tempdir().expect("temp dir for redis-server");
            make_certificates(dir.path());
            let file = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
            let mut server = Self {
                port,
                extra: vec![
                    "--tls-port".into(),
                    tls_port.to_string(),
                    "--tls-cert-file".into(),
                    file("server.crt"),
                    "--tls-key-file".into(),
                    file("server.key"),
                    "--tls-ca-cert-file".into(),
                    file("ca.crt"),
                    "--tls-auth-clients".into(),
                    "no".into(),
                ],
                dir,
                watchdog: None,
                tls_port: Some(tls_port),
            };
            if server.launch() {
                return server;
            }
        }
        panic!("could not start redis-server with TLS after 20 attempts (is it built with TLS?)");
    }

    /// `rediss://localhost:TLS_PORT`, for a server started with [`start_tls`](Self::start_tls).
    pub fn tls_url(&self) -> String {
        let port = self
            .tls_port
            .expect("the server was started with start_tls");
        format!("rediss://localhost:{port}")
    }

    /// The PEM of the CA that signed the TLS certificate.
    pub fn tls_ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.dir.path().join("ca.crt")).expect("the CA certificate")
    }

    /// The port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Sends one command and returns the reply as text (see the crate docs).
    pub fn command(&self, args: &[&str]) -> String {
        resp::command(self.port, args)
            .unwrap_or_else(|e| panic!("redis command {args:?} on port {}: {e}", self.port))
    }

    /// How many times a command ran, from `INFO commandstats` (`evalsha`, `eval`, …).
    pub fn command_calls(&self, name: &str) -> u64 {
        let info = self.command(&["INFO", "commandstats"]);
        let prefix = format!("cmdstat_{}:calls=", name.to_ascii_lowercase());
        info.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |n| n.parse().expect("calls is a number"))
    }

    /// CPU seconds the server has used (user + system, from `INFO cpu`).
    pub fn cpu_seconds(&self) -> f64 {
        let info = self.command(&["INFO", "cpu"]);
        ["used_cpu_user:", "used_cpu_sys:"]
            .iter()
            .map(|field| {
                info.lines()
                    .find_map(|line| line.strip_prefix(field))
                    .map_or(0.0, |v| v.trim().parse().expect("cpu seconds are a number"))
            })
            .sum()
    }

    /// Kills the server with SIGKILL, as a crash would, and waits until the port is closed.
    pub fn kill(&mut self) {
        self.signal("KILL");
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while resp::command(self.port, &["PING"]).is_ok() {
            assert!(Instant::now() < deadline, "redis-server did not die");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the server again on the same port, empty, with an empty script cache.
    pub fn restart(&mut self) {
        if self.watchdog.is_some() {
            self.kill();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.launch() {
            assert!(
                Instant::now() < deadline,
                "could not restart redis-server on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open and nothing is answered.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.path().join("redis.pid")
    }

    fn signal(&self, signal: &str) {
        let Ok(pid) = std::fs::read_to_string(self.pid_file()) else {
            return;
        };
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.trim())
            .stderr(Stdio::null())
            .status();
    }

    /// Runs redis-server under a watchdog shell that kills it when this process exits,
    /// then waits for PING. Returns false if it did not come up (port taken, …).
    fn launch(&mut self) -> bool {
        let _ = std::fs::remove_file(self.pid_file());
        let dir = self.dir.path().to_string_lossy().into_owned();
        let mut args: Vec<String> = [
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--dir",
            &dir,
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            &format!("{dir}/redis.log"),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        args.extend(self.extra.iter().cloned());
        let script = format!(
            "redis-server \"$@\" & r=$!; echo $r > '{pid}'; \
             while kill -0 {parent} 2>/dev/null && kill -0 $r 2>/dev/null; do sleep 0.2; done; \
             kill -9 $r 2>/dev/null",
            pid = self.pid_file().display(),
            parent = std::process::id(),
        );
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sh for redis-server");
        self.watchdog = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if resp::command(self.port, &["PING"]).is_ok_and(|r| r == "+PONG") {
                return true;
            }
            if let Some(watchdog) = self.watchdog.as_mut()
                && watchdog.try_wait().ok().flatten().is_some()
            {
                self.watchdog = None;
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.signal("CONT");
        self.signal("KILL");
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }
}

fn ensure_installed() {
    let found = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(found, "{MISSING}");
}

/// A port that is free now, and whose cluster bus port (+10000) is free too.
fn free_port() -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let port = listener.local_addr().expect("local addr").port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// A CA and a server certificate it signs (P-256 keys), in `dir`: `ca.crt`, `server.crt`,
/// `server.key`.
fn make_certificates(dir: &std::path::Path) {
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .expect("write the certificate extensions");
    let steps: [&[&str]; 3] = [
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=parapet test CA",
        ],
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    ];
    for args in steps {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl was not found on PATH: run `scripts/test`, which installs it");
        assert!(status.success(), "openssl {args:?} failed");
    }
}
