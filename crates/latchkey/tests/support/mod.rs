//! Shared helpers for the `latchkey` binary's integration tests: a temp directory per test,
//! commands run with a deadline, servers that are stopped with SIGTERM when the test ends,
//! and polling with a stated bound instead of sleeps.

// Each test crate (`cli`, `nodes`) uses a different part of this module.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test, built by Cargo for this test run.
pub const BIN: &str = env!("CARGO_BIN_EXE_latchkey");

/// The longest a CLI command may take (debug build, RSA key generation, 2 cores).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// The longest a server may take to print its address.
pub const START_TIMEOUT: Duration = Duration::from_secs(120);
/// The longest a server may take to exit after SIGTERM when it has no requests in flight.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How often `eventually` probes.
pub const POLL_EVERY: Duration = Duration::from_millis(100);

/// Environment every command gets: Argon2 made cheap, so tests stay fast.
const CHEAP_PASSWORDS: &[(&str, &str)] =
    &[("LATCHKEY_PASSWORDS__MEMORY_KIB", "64"), ("LATCHKEY_PASSWORDS__ITERATIONS", "1")];

/// A temp directory a test works in; commands run there unless told otherwise.
pub struct Workspace {
    _dir: tempfile::TempDir,
    root: PathBuf,
    env: BTreeMap<String, String>,
}

impl Workspace {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
        // The canonical path is what the binary sees as its working directory (and names
        // in its messages), even where the temp dir sits behind a symlink.
        let root = dir.path().canonicalize().unwrap_or_else(|e| panic!("cannot resolve {}: {e}", dir.path().display()));
        Self { _dir: dir, root, env: BTreeMap::new() }
    }

    /// The directory commands run in by default.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// A subdirectory, created if missing.
    pub fn subdir(&self, relative: &str) -> PathBuf {
        let path = self.root.join(relative);
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        path
    }

    /// Writes a file (creating parent directories), relative to the root.
    pub fn write(&self, relative: &str, contents: &str) -> PathBuf {
        let path = self.root.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
        }
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }

    /// Sets an environment variable for every later command of this workspace.
    pub fn set_env(&mut self, key: &str, value: &str) -> &mut Self {
        self.env.insert(key.to_owned(), value.to_owned());
        self
    }

    /// The names of the entries in the root directory, sorted.
    pub fn entries(&self) -> Vec<String> {
        entries(&self.root)
    }

    /// A command for the binary with this workspace's environment, run in `cwd`.
    pub fn command_in(&self, cwd: &Path, args: &[&str], extra_env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(cwd).args(args);
        // Nothing from the developer's or CI's environment may change what is tested.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("LATCHKEY_") {
                cmd.env_remove(&key);
            }
        }
        for (k, v) in CHEAP_PASSWORDS {
            cmd.env(k, v);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs `latchkey ARGS` in the root with stdin closed.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_full(&self.root, args, &[], None)
    }

    /// Runs `latchkey ARGS` in the root with extra environment variables.
    pub fn run_env(&self, args: &[&str], extra_env: &[(&str, &str)]) -> Output {
        self.run_full(&self.root, args, extra_env, None)
    }

    /// Runs `latchkey ARGS` in the root with `input` on stdin.
    pub fn run_stdin(&self, args: &[&str], input: &str) -> Output {
        self.run_full(&self.root, args, &[], Some(input))
    }

    /// Runs `latchkey ARGS` in another working directory.
    pub fn run_in(&self, cwd: &Path, args: &[&str]) -> Output {
        self.run_full(cwd, args, &[], None)
    }

    pub fn run_full(&self, cwd: &Path, args: &[&str], extra_env: &[(&str, &str)], input: Option<&str>) -> Output {
        let what = describe(args, extra_env);
        let mut cmd = self.command_in(cwd, args, extra_env);
        run_with_deadline(&mut cmd, input, what)
    }

    /// Starts `latchkey serve` in the root, waiting until it prints its address.
    pub fn serve(&self, extra_env: &[(&str, &str)]) -> Server {
        self.serve_in(&self.root, &["serve"], extra_env)
    }

    pub fn serve_in(&self, cwd: &Path, args: &[&str], extra_env: &[(&str, &str)]) -> Server {
        let what = describe(args, extra_env);
        let mut cmd = self.command_in(cwd, args, extra_env);
        Server::start(&mut cmd, what)
    }
}

impl Default for Workspace {
    fn default() -> Self {
        Self::new()
    }
}

/// The names of the entries of `dir`, sorted (empty if it does not exist).
pub fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

fn describe(args: &[&str], extra_env: &[(&str, &str)]) -> String {
    let env: Vec<String> = extra_env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut parts = env;
    parts.push("latchkey".into());
    parts.extend(args.iter().map(|a| if a.contains(' ') { format!("{a:?}") } else { (*a).to_owned() }));
    parts.join(" ")
}

/// What a finished command did.
pub struct Output {
    pub what: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Fails the test unless the command exited with `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        if self.code() != Some(code) {
            panic!("`{}`: expected exit status {code}, got {}\n{}", self.what, self.status, self.transcript());
        }
        self
    }

    #[track_caller]
    pub fn success(&self) -> &Self {
        self.expect_code(0)
    }

    /// stdout parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("`{}`: stdout is not JSON ({e})\n{}", self.what, self.transcript()))
    }

    /// Fails the test unless stderr contains every one of `parts`.
    #[track_caller]
    pub fn stderr_names(&self, parts: &[&str]) -> &Self {
        for part in parts {
            if !self.stderr.contains(part) {
                panic!("`{}`: stderr does not mention {part:?}\n{}", self.what, self.transcript());
            }
        }
        self
    }

    /// Fails the test unless stdout contains every one of `parts`.
    #[track_caller]
    pub fn stdout_names(&self, parts: &[&str]) -> &Self {
        for part in parts {
            if !self.stdout.contains(part) {
                panic!("`{}`: stdout does not mention {part:?}\n{}", self.what, self.transcript());
            }
        }
        self
    }

    /// Fails the test if `secret` appears on stdout or stderr.
    #[track_caller]
    pub fn never_shows(&self, secret: &str) -> &Self {
        if self.stdout.contains(secret) || self.stderr.contains(secret) {
            panic!("`{}`: the output shows the secret {secret:?}\n{}", self.what, self.transcript());
        }
        self
    }

    pub fn transcript(&self) -> String {
        format!("--- stdout ---\n{}\n--- stderr ---\n{}", self.stdout, self.stderr)
    }
}

fn read_all(stream: Option<impl std::io::Read + Send + 'static>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut s) = stream {
            let mut bytes = Vec::new();
            let _ = s.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        text
    })
}

/// Runs `cmd` to completion (stdin from `input`, or closed), killing it after
/// `COMMAND_TIMEOUT`.
fn run_with_deadline(cmd: &mut Command, input: Option<&str>, what: String) -> Output {
    cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start `{what}`: {e}"));
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        // A command that exits without reading stdin closes the pipe; that is its business.
        let _ = stdin.write_all(text.as_bytes());
    }
    let stdout = read_all(child.stdout.take());
    let stderr = read_all(child.stderr.take());
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("`{what}` did not finish within {COMMAND_TIMEOUT:?}");
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("cannot wait for `{what}`: {e}"),
        }
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    Output { what, status, stdout, stderr }
}

/// Sends SIGTERM to `pid` (through kill(1), so no libc binding is needed).
pub fn send_sigterm(pid: u32) {
    let status =
        Command::new("kill").args(["-TERM", &pid.to_string()]).stdout(Stdio::null()).stderr(Stdio::null()).status();
    if let Err(e) = status {
        eprintln!("cannot run kill -TERM {pid}: {e}");
    }
}

/// Waits for `child` until `deadline`; `None` if it is still running then.
fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() >= deadline => return None,
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => return None,
        }
    }
}

/// A running `latchkey serve`. Dropping it sends SIGTERM and waits (SIGKILL as a last
/// resort), so no server outlives its test, even a failed one.
pub struct Server {
    what: String,
    child: Option<Child>,
    lines: mpsc::Receiver<String>,
    /// Every stdout line read so far.
    pub stdout: Vec<String>,
    stderr: Option<JoinHandle<String>>,
    /// The issuer it printed, e.g. `http://localhost:41234`.
    pub issuer: String,
    /// The address it printed, e.g. `127.0.0.1:41234`.
    pub listening: String,
}

impl Server {
    fn start(cmd: &mut Command, what: String) -> Server {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start `{what}`: {e}"));
        let (tx, rx) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let stderr = read_all(child.stderr.take());
        let mut server = Server {
            what,
            child: Some(child),
            lines: rx,
            stdout: Vec::new(),
            stderr: Some(stderr),
            issuer: String::new(),
            listening: String::new(),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        while server.issuer.is_empty() || server.listening.is_empty() {
            let line = server.next_line(deadline, "its issuer and address");
            if let Some(v) = line.trim().strip_prefix("issuer:") {
                server.issuer = v.trim().to_owned();
            } else if let Some(v) = line.trim().strip_prefix("listening:") {
                server.listening = v.trim().to_owned();
            }
        }
        server
    }

    /// The next stdout line, failing the test (with stderr) if the server exits or the
    /// deadline passes first.
    fn next_line(&mut self, deadline: Instant, waiting_for: &str) -> String {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(line) => {
                self.stdout.push(line.clone());
                line
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let stderr = self.stop_and_collect_stderr();
                panic!(
                    "`{}` did not print {waiting_for} in time\n--- stdout ---\n{}\n--- stderr ---\n{stderr}",
                    self.what,
                    self.stdout.join("\n")
                );
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = self.child.as_mut().and_then(|c| wait_until(c, Instant::now() + STOP_TIMEOUT));
                let stderr = self.stop_and_collect_stderr();
                panic!(
                    "`{}` closed stdout (exit status {status:?}) before printing {waiting_for}\n--- stdout ---\n{}\n--- stderr ---\n{stderr}",
                    self.what,
                    self.stdout.join("\n")
                );
            }
        }
    }

    /// Reads stdout until a line satisfies `matches`, and returns it.
    pub fn wait_for_line(&mut self, within: Duration, description: &str, matches: impl Fn(&str) -> bool) -> String {
        if let Some(line) = self.stdout.iter().find(|l| matches(l)) {
            return line.clone();
        }
        let deadline = Instant::now() + within;
        loop {
            let line = self.next_line(deadline, description);
            if matches(&line) {
                return line;
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.listening)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends SIGTERM and waits for the exit; fails the test if it does not exit in time.
    pub fn terminate(&mut self) -> ExitStatus {
        let Some(mut child) = self.child.take() else {
            panic!("`{}` was already stopped", self.what);
        };
        send_sigterm(child.id());
        match wait_until(&mut child, Instant::now() + STOP_TIMEOUT) {
            Some(status) => status,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("`{}` did not exit within {STOP_TIMEOUT:?} of SIGTERM", self.what);
            }
        }
    }

    /// Everything the server wrote on stderr; only complete once it has exited.
    pub fn stderr(&mut self) -> String {
        self.stderr.take().and_then(|h| h.join().ok()).unwrap_or_default()
    }

    fn stop_and_collect_stderr(&mut self) -> String {
        if let Some(mut child) = self.child.take() {
            send_sigterm(child.id());
            if wait_until(&mut child, Instant::now() + STOP_TIMEOUT).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        self.stderr()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            send_sigterm(child.id());
            if wait_until(&mut child, Instant::now() + STOP_TIMEOUT).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// An HTTP client for the servers under test.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_else(|e| panic!("cannot build an HTTP client: {e}"))
}

/// GETs `url` and parses the body as JSON, failing unless the status is 200.
pub async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    match try_get_json(client, url).await {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

pub async fn try_get_json(client: &reqwest::Client, url: &str) -> Result<Value, String> {
    let response = client.get(url).send().await.map_err(|e| format!("GET {url}: {e}"))?;
    let status = response.status();
    let body = response.text().await.map_err(|e| format!("GET {url}: reading the body: {e}"))?;
    if status != reqwest::StatusCode::OK {
        return Err(format!("GET {url}: status {status}, body {body}"));
    }
    serde_json::from_str(&body).map_err(|e| format!("GET {url}: body is not JSON ({e}): {body}"))
}

/// `(alg, kid)` of every key in a JWKS document, sorted.
pub fn jwks_keys(jwks: &Value) -> Vec<(String, String)> {
    let mut keys: Vec<(String, String)> = jwks["keys"]
        .as_array()
        .map(|keys| {
            keys.iter()
                .map(|k| {
                    (k["alg"].as_str().unwrap_or_default().to_owned(), k["kid"].as_str().unwrap_or_default().to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    keys.sort();
    keys
}

/// The kids in a JWKS document, sorted.
pub fn jwks_kids(jwks: &Value) -> Vec<String> {
    let mut kids: Vec<String> = jwks_keys(jwks).into_iter().map(|(_, kid)| kid).collect();
    kids.sort();
    kids
}

/// The kid of the key of `alg` in `state` in `keys list --json` output.
#[track_caller]
pub fn key_in_state(list: &Value, alg: &str, state: &str) -> String {
    let found: Vec<&str> = list
        .as_array()
        .map(|keys| {
            keys.iter().filter(|k| k["alg"] == alg && k["state"] == state).filter_map(|k| k["kid"].as_str()).collect()
        })
        .unwrap_or_default();
    match found.as_slice() {
        [one] => (*one).to_owned(),
        other => panic!("expected exactly one {state} {alg} key, found {other:?} in {list:#}"),
    }
}

/// Probes every `POLL_EVERY` until `probe` returns `Ok`, failing the test with the last
/// observation if `deadline` passes first.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Instant, bound: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    loop {
        let last = match probe().await {
            Ok(value) => return value,
            Err(observed) => observed,
        };
        if Instant::now() >= deadline {
            panic!("{what}: not seen within {bound}; last observation: {last}");
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

impl Workspace {
    /// The services over this workspace's database, opened as a command run here opens
    /// them (its default configuration: `latchkey.db` and `latchkey.master-key` here), for
    /// a test to set up or inspect what no command does.
    #[allow(dead_code)]
    pub async fn services(&self) -> latchkey_service::Latchkey {
        let mut config = latchkey_config::Config::load(None, &[], self.root())
            .unwrap_or_else(|e| panic!("default configuration: {e}"));
        config.passwords.memory_kib = 64;
        config.passwords.iterations = 1;
        let foundation = latchkey_service::Foundation::open(config, latchkey_core::Clock::system())
            .await
            .unwrap_or_else(|e| panic!("open the services: {e}"));
        let config = foundation.config.clone();
        latchkey_service::Latchkey::new(foundation, config)
    }
}
