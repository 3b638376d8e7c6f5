//! `latchkey-bench`: the load driver `bench/run` uses where wrk cannot serve. It replays a
//! request shape at a fixed rate (wrk only runs closed-loop), and drives the scenarios that
//! are not one request shape: the authorization-code flow with live sessions, chains of
//! single-use refresh tokens, and password sign-in through the CSRF-protected login form. It
//! also measures the raw Argon2id rate the sign-in scenario is compared with.
//!
//! Each run prints one JSON object on standard output. Every response is checked (status,
//! the tokens that must come back); a failure is counted as an error, never as speed.

mod argon;
mod browser;
mod flow;
mod login;
mod oauth;
mod pace;
mod refresh;
mod replay;

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use latchkey_core::crypto::PasswordPolicy;
use reqwest::Method;
use serde_json::{Value, json};

use crate::oauth::Setup;
use crate::pace::{Pace, Plan, Worker};

#[derive(Parser)]
#[command(name = "latchkey-bench", about = "Load driver for Latchkey's bench/run")]
struct Cli {
    /// Runtime threads of the driver (the load generator's share of the machine).
    #[arg(long, global = true, default_value_t = 2)]
    threads: usize,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Load {
    /// The issuer URL of the server under load.
    #[arg(long)]
    base: url::Url,
    /// Concurrent workers, each with its own connection (and browser, where there is one).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Operations per second in total; 0 runs closed-loop, as fast as the server answers.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// The server's process id: its CPU time over the measured window is reported.
    #[arg(long)]
    server_pid: Option<u32>,
}

#[derive(Args, Clone)]
struct Client {
    #[arg(long)]
    client_id: String,
    #[arg(long)]
    client_secret: String,
    #[arg(long)]
    redirect_uri: String,
    #[arg(long, default_value = "bench")]
    username: String,
    /// The user's password (a throw-away bench account).
    #[arg(long, env = "BENCH_PASSWORD")]
    password: String,
}

#[derive(Subcommand)]
enum Command {
    /// Replay one request shape (the wrk scenarios), closed-loop or at a fixed rate.
    Replay {
        #[command(flatten)]
        load: Load,
        #[arg(long, default_value = "GET")]
        method: Method,
        #[arg(long)]
        path: String,
        /// A request header, `Name: value`; repeatable.
        #[arg(long = "header", short = 'H')]
        headers: Vec<String>,
        #[arg(long)]
        body: Option<String>,
        /// A file of request bodies, one per line, sent in turn instead of `--body`; each
        /// connection takes its own share of them.
        #[arg(long, conflicts_with = "body")]
        bodies: Option<std::path::PathBuf>,
        #[arg(long, default_value_t = 200)]
        expect_status: u16,
        /// Text the response body must contain.
        #[arg(long)]
        expect_body: Option<String>,
    },
    /// Authorization-code flows (PKCE) on live sessions, one signed-in browser per connection.
    Flow {
        #[command(flatten)]
        load: Load,
        #[command(flatten)]
        client: Client,
    },
    /// Refresh-token rotation, one chain of single-use tokens per connection.
    Refresh {
        #[command(flatten)]
        load: Load,
        #[command(flatten)]
        client: Client,
    },
    /// Password sign-in through the login form, a new browser each time.
    Login {
        #[command(flatten)]
        load: Load,
        #[command(flatten)]
        client: Client,
    },
    /// Sign in through the login page once and print the tokens of one flow.
    Tokens {
        #[arg(long)]
        base: url::Url,
        #[command(flatten)]
        client: Client,
        #[arg(long, default_value = "openid profile email")]
        scope: String,
    },
    /// Client-credentials access tokens, printed as a JSON array (distinct tokens for
    /// introspection).
    Mint {
        #[arg(long)]
        base: url::Url,
        /// `client_id:client_secret` of a client-credentials client, base64 (Basic auth).
        #[arg(long, env = "BENCH_AUTH")]
        auth: String,
        #[arg(long)]
        count: usize,
    },
    /// The raw Argon2id verification rate at the server's parameters, no HTTP.
    Argon2 {
        #[arg(long, default_value_t = PasswordPolicy::default().memory_kib)]
        memory_kib: u32,
        #[arg(long, default_value_t = PasswordPolicy::default().iterations)]
        iterations: u32,
        #[arg(long, default_value_t = PasswordPolicy::default().parallelism)]
        parallelism: u32,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime =
        match tokio::runtime::Builder::new_multi_thread().worker_threads(cli.threads.max(1)).enable_all().build() {
            Ok(r) => r,
            Err(e) => {
                eprintln!("latchkey-bench: cannot start the runtime: {e}");
                return ExitCode::FAILURE;
            }
        };
    match runtime.block_on(run(cli.command, cli.threads)) {
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("latchkey-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, threads: usize) -> Result<Value, String> {
    match command {
        Command::Replay { load, method, path, headers, body, bodies, expect_status, expect_body } => {
            let shape = replay::Shape {
                method,
                url: setup_base(&load.base, &path)?,
                headers: headers.iter().map(|h| replay::header(h)).collect::<Result<_, _>>()?,
                body,
                expect_status,
                expect_body,
            };
            let bodies = match bodies {
                Some(file) => std::fs::read_to_string(&file)
                    .map_err(|e| format!("cannot read {}: {e}", file.display()))?
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect(),
                None => Vec::new(),
            };
            let requests = replay::Requests::new(&shape, &bodies);
            let workers = (0..load.connections)
                .map(|i| replay::Replay::new(&shape, &requests, i, load.connections))
                .collect::<Result<Vec<_>, _>>()?;
            measure(&load, workers, "requests").await
        }
        Command::Flow { load, client } => {
            let setup = setup(&load.base, client);
            let workers = prepare(load.connections, || flow::SessionFlow::sign_in(setup.clone())).await?;
            measure(&load, workers, "flows").await
        }
        Command::Refresh { load, client } => {
            let setup = setup(&load.base, client);
            let workers = prepare(load.connections, || refresh::Chain::start(setup.clone())).await?;
            measure(&load, workers, "refreshes").await
        }
        Command::Login { load, client } => {
            let setup = setup(&load.base, client);
            let workers = (0..load.connections).map(|_| login::SignIn::new(&setup)).collect::<Result<Vec<_>, _>>()?;
            measure(&load, workers, "sign-ins").await
        }
        Command::Tokens { base, client, scope } => {
            let setup = setup(&base, client);
            let mut browser = browser::Browser::new()?;
            oauth::sign_in_and_get_tokens(&setup, &mut browser, &scope).await
        }
        Command::Mint { base, auth, count } => oauth::mint_client_credentials(&base, &auth, count).await,
        Command::Argon2 { memory_kib, iterations, parallelism, seconds } => {
            let policy = PasswordPolicy { memory_kib, iterations, parallelism };
            tokio::task::spawn_blocking(move || argon::rate(policy, threads, seconds))
                .await
                .map_err(|e| format!("the measurement failed: {e}"))?
        }
    }
}

fn setup(base: &url::Url, c: Client) -> Setup {
    Setup {
        base: base.clone(),
        client_id: c.client_id,
        client_secret: c.client_secret,
        redirect_uri: c.redirect_uri,
        username: c.username,
        password: c.password,
    }
}

fn setup_base(base: &url::Url, path: &str) -> Result<url::Url, String> {
    let root = base.as_str().trim_end_matches('/');
    url::Url::parse(&format!("{root}{path}")).map_err(|e| format!("bad path {path}: {e}"))
}

/// Builds the workers concurrently (each signs a browser in); any failure ends the run.
async fn prepare<W, F, Fut>(n: usize, make: F) -> Result<Vec<W>, String>
where
    W: Worker,
    F: Fn() -> Fut,
    Fut: Future<Output = Result<W, String>> + Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        set.spawn(make());
    }
    let mut workers = Vec::with_capacity(n);
    while let Some(joined) = set.join_next().await {
        let worker = joined.map_err(|e| format!("setting up a worker: {e}"))?;
        workers.push(worker.map_err(|e| format!("setting up a worker: {e}"))?);
    }
    Ok(workers)
}

async fn measure<W: Worker>(load: &Load, workers: Vec<W>, unit: &str) -> Result<Value, String> {
    let plan = Plan {
        pace: if load.rate > 0.0 { Pace::Fixed(load.rate) } else { Pace::Closed },
        warmup: Duration::from_secs_f64(load.warmup.max(0.0)),
        measure: Duration::from_secs_f64(load.seconds.max(0.1)),
        server_pid: load.server_pid,
    };
    let outcome = pace::drive(workers, plan).await;
    let mut v = outcome.to_json(unit);
    v["connections"] = json!(load.connections);
    Ok(v)
}
