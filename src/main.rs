//! The flowgate command line: a thin wrapper over the library.

use anyhow::Context;
use clap::{Parser, Subcommand};
use flowgate::config::{Config, Source};
use flowgate::identity::{HashParams, PasswordHasher};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// mimalloc: the proxy path allocates small, short-lived buffers on several threads, where
/// glibc malloc showed up at ~10% of CPU in profiles (see docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code for bad configuration or usage (EX_USAGE).
const EXIT_USAGE: u8 = 64;

#[path = "cli/accounts.rs"]
mod accounts;
#[path = "cli/admin_client.rs"]
mod admin_client;
#[path = "cli/import.rs"]
mod import;
#[path = "cli/live.rs"]
mod live;
#[path = "cli/sessions.rs"]
mod sessions;
#[path = "cli/tokens.rs"]
mod tokens;
use accounts::{invitation_cmd, open_store, read_password, user_cmd, InvitationCmd, UserCmd};
use import::import_cmd;

#[derive(Parser)]
#[command(
    name = "flowgate",
    version,
    about = "Reverse-proxy authentication gateway running authentik-style flows"
)]
struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the gateway with a config file.
    Run {
        /// Main config file.
        #[arg(short, long, default_value = "config/flowgate.yaml")]
        config: PathBuf,
    },
    /// Run the gateway on embedded defaults in front of a built-in echo app.
    Demo {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
    /// Validate a config file without starting (exit 0, or 64 on errors).
    Check {
        /// Main config file.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Manage users in the configured database.
    User {
        /// Main config file (for the database location).
        #[arg(short, long, default_value = "config/flowgate.yaml")]
        config: PathBuf,
        #[command(subcommand)]
        action: UserCmd,
    },
    /// List or revoke sessions in the live session store (every replica honours it).
    Session {
        /// Main config file (for the session store).
        #[arg(short, long, default_value = "config/flowgate.yaml")]
        config: PathBuf,
        #[command(subcommand)]
        action: sessions::SessionCmd,
    },
    /// Manage invitations (for flows with an invitation stage).
    Invitation {
        /// Main config file (for the database location).
        #[arg(short, long, default_value = "config/flowgate.yaml")]
        config: PathBuf,
        #[command(subcommand)]
        action: InvitationCmd,
    },
    /// App passwords for API clients of apps with `basic_auth: true`.
    Token {
        /// Main config file (for the database location and the apps).
        #[arg(short, long, default_value = "config/flowgate.yaml")]
        config: PathBuf,
        #[command(subcommand)]
        action: tokens::TokenCmd,
    },
    /// Print the JSON Schema of the configuration file (for editors; docs/configuration.md).
    Schema,
    /// Hash a password read from standard input (argon2id PHC string).
    HashPassword,
    /// Show the plan a flow would get for a user, with every policy result and its timing.
    Plan {
        /// Main config file.
        #[arg(short, long, default_value = "config/flowgate.yaml")]
        config: PathBuf,
        /// Flow slug.
        #[arg(long)]
        flow: String,
        /// Evaluate for this user (logged in); anonymous when absent.
        #[arg(long)]
        user: Option<String>,
        /// Client address the policies see.
        #[arg(long)]
        ip: Option<std::net::IpAddr>,
        /// Request path the policies see.
        #[arg(long, default_value = "")]
        path: String,
    },
    /// Export a flow (mermaid for now; yaml and blueprint come with import/export).
    Export {
        /// Main config file.
        #[arg(short, long, default_value = "config/flowgate.yaml")]
        config: PathBuf,
        /// Flow slug (repeatable); all flows when absent (mermaid needs one).
        #[arg(long)]
        flow: Vec<String>,
        /// Output format: yaml (native), blueprint (authentik), mermaid.
        #[arg(long, default_value = "yaml")]
        format: String,
    },
    /// Import authentik blueprints or legacy JSON flow exports into native YAML.
    Import {
        /// Blueprint files, applied in order.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Write here (atomically) instead of standard output; users and groups go to
        /// `<OUT stem>.seed.yaml`.
        #[arg(short, long)]
        out: Option<PathBuf>,
        /// Fail when any entry or attribute cannot be imported.
        #[arg(long)]
        strict: bool,
    },
    /// Write a self-signed development certificate and key.
    Cert {
        /// Output directory.
        #[arg(long, default_value = "certs")]
        out: PathBuf,
        /// Host names (repeatable).
        #[arg(long = "host", default_values_t = vec!["localhost".to_string(), "127.0.0.1".to_string()])]
        hosts: Vec<String>,
    },
}

fn init_tracing(json: bool) {
    use tracing_subscriber::filter::{filter_fn, FilterExt};
    use tracing_subscriber::prelude::*;
    let env = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,pingora_core=warn,pingora_proxy=warn"));
    // Forward `log` records (pingora) only up to the level the filter can let through, so
    // disabled levels cost nothing on the request path.
    let max = match env.max_level_hint() {
        Some(l) if l >= tracing_subscriber::filter::LevelFilter::TRACE => log::LevelFilter::Trace,
        Some(l) if l >= tracing_subscriber::filter::LevelFilter::DEBUG => log::LevelFilter::Debug,
        Some(l) if l >= tracing_subscriber::filter::LevelFilter::INFO => log::LevelFilter::Info,
        Some(l) if l >= tracing_subscriber::filter::LevelFilter::WARN => log::LevelFilter::Warn,
        Some(l) if l >= tracing_subscriber::filter::LevelFilter::ERROR => log::LevelFilter::Error,
        Some(_) => log::LevelFilter::Off,
        None => log::LevelFilter::Trace,
    };
    let _ = tracing_log::LogTracer::builder().with_max_level(max).init();
    let filter = env.and(filter_fn(flowgate::log_record_allowed));
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let _ = if json {
        tracing_subscriber::registry()
            .with(layer.json().with_filter(filter))
            .try_init()
    } else {
        tracing_subscriber::registry()
            .with(layer.with_filter(filter))
            .try_init()
    };
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_json);
    match cli.cmd {
        Cmd::Check { config } => match Config::load(&config) {
            Ok(c) => {
                for n in &c.notes {
                    eprintln!("warning: {n}");
                }
                println!(
                    "{}: ok ({} apps, {} flows, {} stages)",
                    config.display(),
                    c.apps.len(),
                    c.flows.len(),
                    c.stages.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(EXIT_USAGE)
            }
        },
        Cmd::Schema => {
            print!("{}", flowgate::config::schema::json_schema());
            ExitCode::SUCCESS
        }
        Cmd::HashPassword => match read_password("Password: ").and_then(|pw| {
            let h = PasswordHasher::new(HashParams::default());
            h.hash_blocking(&pw).map_err(|e| anyhow::anyhow!("{e}"))
        }) {
            Ok(h) => {
                println!("{h}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        Cmd::Cert { out, hosts } => match flowgate::tls::write_dev_certificate(&out, &hosts) {
            Ok((c, k)) => {
                println!(
                    "wrote {} and {} (self-signed, for development only)",
                    c.display(),
                    k.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => fail(e.into()),
        },
        other => {
            let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => return fail(e.into()),
            };
            match rt.block_on(run_async(other)) {
                Ok(code) => code,
                Err(e) if e.is::<UsageError>() => ExitCode::from(EXIT_USAGE),
                Err(e) => fail(e),
            }
        }
    }
}

fn fail(e: anyhow::Error) -> ExitCode {
    eprintln!("error: {e:#}");
    ExitCode::FAILURE
}

fn flow_or_usage<'a>(cfg: &'a Config, slug: &str) -> Option<&'a flowgate::config::Flow> {
    let f = cfg.flows.get(slug);
    if f.is_none() {
        eprintln!(
            "unknown flow {slug:?} (known: {})",
            cfg.flows.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    f
}

/// A failure already reported on stderr that exits with [`EXIT_USAGE`].
#[derive(Debug)]
struct UsageError;

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("usage error")
    }
}

impl std::error::Error for UsageError {}

/// Loads the config, or prints its errors and fails with [`UsageError`].
fn load_or_usage(path: &Path) -> anyhow::Result<Config> {
    Config::load(path).map_err(|e| {
        eprintln!("{e}");
        anyhow::Error::new(UsageError)
    })
}

async fn run_async(cmd: Cmd) -> anyhow::Result<ExitCode> {
    match cmd {
        Cmd::Run { config } => {
            let cfg = load_or_usage(&config)?;
            // Before the gateway starts (and says so): a SIGHUP that arrives before its
            // handler would end the process (the signal's default action).
            let signals = Signals::install();
            let running = flowgate::Gateway::start(cfg).await?;
            serve_until_signal(&running, &config, signals).await;
            tracing::info!("shutting down");
            running.shutdown().await;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Demo { listen } => demo(listen).await,
        Cmd::User { config, action } => {
            let cfg = load_or_usage(&config)?;
            let is_passwd = matches!(action, UserCmd::Passwd { .. });
            if let (false, Some(c)) = (is_passwd, admin_client::AdminClient::connect(&cfg).await) {
                return live::user(&c, action).await;
            }
            let store = open_store(&cfg).await?;
            let r = user_cmd(&cfg, &store, action).await;
            store.close().await;
            r?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Session { config, action } => {
            let cfg = load_or_usage(&config)?;
            if let Some(c) = admin_client::AdminClient::connect(&cfg).await {
                return live::session(&c, action).await;
            }
            let store = open_store(&cfg).await?;
            let r = sessions::session_cmd(&cfg, &store, action).await;
            store.close().await;
            r
        }
        Cmd::Invitation { config, action } => {
            let cfg = load_or_usage(&config)?;
            if let InvitationCmd::Create { flow: Some(f), .. } = &action {
                if flow_or_usage(&cfg, f).is_none() {
                    return Ok(ExitCode::from(64));
                }
            }
            if let Some(c) = admin_client::AdminClient::connect(&cfg).await {
                return live::invitation(&c, action).await;
            }
            let store = open_store(&cfg).await?;
            let r = invitation_cmd(&store, action).await;
            store.close().await;
            r
        }
        Cmd::Token { config, action } => {
            let cfg = load_or_usage(&config)?;
            if let Err(e) = tokens::check_app(&cfg, &action) {
                eprintln!("{e}");
                return Ok(ExitCode::from(EXIT_USAGE));
            }
            if let Some(c) = admin_client::AdminClient::connect(&cfg).await {
                return tokens::live(&c, action).await;
            }
            let store = open_store(&cfg).await?;
            let r = tokens::direct(&cfg, &store, action).await;
            store.close().await;
            r
        }
        Cmd::Plan {
            config,
            flow,
            user,
            ip,
            path,
        } => {
            let cfg = load_or_usage(&config)?;
            let Some(f) = flow_or_usage(&cfg, &flow) else {
                return Ok(ExitCode::from(EXIT_USAGE));
            };
            let subject = match user {
                None => None,
                Some(name) => {
                    let store = open_store(&cfg).await?;
                    let u = store.get_by_username(&name).await?;
                    store.close().await;
                    match u {
                        Some(u) => Some(flowgate::flow::executor::subject_of_user(&u)),
                        None => {
                            eprintln!("no user named {name:?} in {}", cfg.identity.database);
                            return Ok(ExitCode::from(EXIT_USAGE));
                        }
                    }
                }
            };
            let reg = flowgate::flow::FlowRegistry::from_config(&cfg);
            use flowgate::session::Clock;
            let input = flowgate::flow::policies::PolicyInput {
                user: subject.clone(),
                path,
                client_ip: ip,
                now_ms: flowgate::session::SystemClock.now_ms(),
                ..Default::default()
            };
            let facts = flowgate::flow::planner::PlanFacts {
                request_user: subject,
                input,
                is_redirected: false,
                step_up: false,
            };
            print!(
                "{}",
                flowgate::flow::inspect::plan_report(&reg, &cfg.stages, f, &facts).await
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Export { config, flow, format } => {
            let cfg = load_or_usage(&config)?;
            for f in &flow {
                if flow_or_usage(&cfg, f).is_none() {
                    return Ok(ExitCode::from(EXIT_USAGE));
                }
            }
            let slugs = (!flow.is_empty()).then_some(flow.as_slice());
            match format.as_str() {
                "mermaid" => {
                    let [one] = flow.as_slice() else {
                        eprintln!("--format mermaid draws one flow: give exactly one --flow");
                        return Ok(ExitCode::from(EXIT_USAGE));
                    };
                    let Some(f) = cfg.flows.get(one) else {
                        return Ok(ExitCode::from(EXIT_USAGE));
                    };
                    print!("{}", flowgate::flow::inspect::mermaid(f, &cfg.stages));
                    Ok(ExitCode::SUCCESS)
                }
                "yaml" | "blueprint" => {
                    let doc = flowgate::blueprint::export::native_doc(&cfg.texts, slugs).map_err(anyhow::Error::msg)?;
                    let names = flow.join(", ");
                    if format == "yaml" {
                        print!(
                            "{}",
                            flowgate::blueprint::import::to_yaml(&doc, std::slice::from_ref(&cfg.source))
                        );
                    } else {
                        let title = if names.is_empty() {
                            "flowgate export".to_string()
                        } else {
                            format!("flowgate export - {names}")
                        };
                        print!(
                            "{}",
                            flowgate::blueprint::export::blueprint(&doc, &title).map_err(anyhow::Error::msg)?
                        );
                    }
                    Ok(ExitCode::SUCCESS)
                }
                other => {
                    eprintln!("unknown export format {other:?} (expected one of: yaml, blueprint, mermaid)");
                    Ok(ExitCode::from(EXIT_USAGE))
                }
            }
        }
        Cmd::Import { files, out, strict } => import_cmd(&files, out.as_deref(), strict),
        Cmd::Check { .. } | Cmd::Schema | Cmd::HashPassword | Cmd::Cert { .. } => Ok(ExitCode::SUCCESS),
    }
}

async fn demo(listen: SocketAddr) -> anyhow::Result<ExitCode> {
    use rand::Rng;
    let upstream = flowgate::demo::start_echo("127.0.0.1:0".parse()?).await?;
    let dir = std::env::temp_dir().join(format!("flowgate-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let password: String = rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(16)
        .map(char::from)
        .collect();
    let seed = dir.join("users.yaml");
    std::fs::write(&seed, format!("groups:\n  - {{ name: demo }}\nusers:\n  - {{ username: demo, email: demo@example.test, name: Demo User, password: \"{password}\", groups: [demo] }}\n"))?;
    let mut sources = vec![Source {
        name: "<demo>".into(),
        text: flowgate::demo::demo_config(listen, upstream, &dir, &seed),
        base_dir: dir.clone(),
    }];
    for (name, text) in flowgate::demo::SHIPPED_FLOWS {
        sources.push(Source {
            name: format!("config/flows/{name}"),
            text: (*text).into(),
            base_dir: dir.clone(),
        });
    }
    let cfg = Config::from_sources(sources).map_err(|e| anyhow::anyhow!("embedded demo config is invalid: {e}"))?;
    let running = flowgate::Gateway::start(cfg).await?;
    let addr = running.http_addr.context("demo listener did not bind")?;
    println!("flowgate demo is running.\n\n  Open:      http://{addr}/\n  Username:  demo\n  Password:  {password}\n\n  The app behind it echoes the identity headers it receives. Log out at http://{addr}/logout\n  Sign up at http://{addr}/.flowgate/flow/default-enrollment-flow/\n  Mail (verification, recovery links) is written as .eml files to {}\n  Press Ctrl-C to stop.", dir.join("mail").display());
    let _ = std::io::stdout().flush();
    wait_for_signal().await;
    running.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(ExitCode::SUCCESS)
}

/// Serves until SIGTERM or Ctrl-C; SIGHUP and changed config files reload the config (a bad
/// file keeps the running config and logs every error).
async fn serve_until_signal(running: &flowgate::Running, path: &Path, signals: Option<Signals>) {
    let Some(Signals { mut hup, mut term }) = signals else {
        wait_for_signal().await;
        return;
    };
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
    let mut seen = flowgate::ConfigFingerprint::default();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return,
            _ = term.recv() => return,
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading config");
                let _ = running.reload(path);
            }
            _ = tick.tick() => {
                let _ = running.reload_if_changed(path, &mut seen);
            }
        }
    }
}

/// SIGHUP and SIGTERM, handled by `flowgate run`.
struct Signals {
    hup: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    /// `None` when the handlers cannot be installed (then SIGTERM and Ctrl-C are waited for
    /// as in the demo, and config changes are not watched).
    fn install() -> Option<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        match (signal(SignalKind::hangup()), signal(SignalKind::terminate())) {
            (Ok(hup), Ok(term)) => Some(Self { hup, term }),
            _ => None,
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
