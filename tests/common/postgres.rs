//! A real PostgreSQL for a test: `initdb` in a temporary directory, password (SCRAM) auth on
//! loopback, a free port, started and stopped with `pg_ctl` (stopped on Drop). PostgreSQL
//! refuses to run as root: as root, every command runs as `nobody` (`runuser`), and the
//! directory is handed to that user. The binaries come from Debian's `postgresql` package
//! (`./dev deps`); `FLOWGATE_PG_BIN` overrides their directory.

use flowgate::config::{PostgresDatabase, UserDatabase};
use flowgate::identity::{HashParams, PasswordHasher, UserStore};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The superuser the tests connect as.
pub const PG_USER: &str = "flowgate";
/// Its password (in a file, as `identity.password_file` reads it).
pub const PG_PASSWORD: &str = "pg test password 7";

/// Where Debian puts the server binaries (the newest version present).
fn bin_dir() -> PathBuf {
    if let Ok(d) = std::env::var("FLOWGATE_PG_BIN") {
        return PathBuf::from(d);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed (run ./dev deps)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("pg_ctl").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("no /usr/lib/postgresql/*/bin/pg_ctl (run ./dev deps)")
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A PostgreSQL server of one test.
pub struct PgServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_nobody: bool,
    pub port: u16,
    running: bool,
}

impl PgServer {
    /// Initialises a cluster and starts it.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let as_nobody = running_as_root();
        std::fs::write(dir.path().join("pwfile"), format!("{PG_PASSWORD}\n")).unwrap();
        std::fs::write(dir.path().join("password"), format!("{PG_PASSWORD}\n")).unwrap();
        if as_nobody {
            let st = Command::new("chown")
                .args(["-R", "nobody"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(st.success(), "chown of the PostgreSQL directory failed");
        }
        let mut pg = Self {
            bin: bin_dir(),
            as_nobody,
            port: super::unused_port(),
            running: false,
            dir,
        };
        let data = pg.data();
        let pwfile = pg.dir.path().join("pwfile");
        pg.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                PG_USER,
                &format!("--pwfile={}", pwfile.display()),
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "-N",
            ],
        );
        pg.start_again();
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A file holding the password (for `identity.password_file`).
    pub fn password_file(&self) -> PathBuf {
        self.dir.path().join("password")
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let exe = self.bin.join(tool);
        let out = if self.as_nobody {
            Command::new("runuser")
                .args(["-u", "nobody", "--"])
                .arg(&exe)
                .args(args)
                .current_dir(self.dir.path())
                .output()
        } else {
            Command::new(&exe).args(args).current_dir(self.dir.path()).output()
        }
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
        let log = std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default();
        assert!(
            out.status.success(),
            "{tool} failed: {}\n{}\nserver log:\n{log}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the (stopped) server again on the same port and data.
    pub fn start_again(&mut self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
            self.port,
            self.dir.path().display()
        );
        let data = self.data();
        let log = self.dir.path().join("log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        self.running = true;
    }

    /// Stops the server (fast shutdown: connections are cut, as in an outage).
    pub fn stop(&mut self) {
        let data = self.data();
        self.run("pg_ctl", &["-D", data.to_str().unwrap(), "-m", "fast", "-w", "stop"]);
        self.running = false;
    }

    /// `postgres://flowgate@127.0.0.1:PORT/DB` (no password: it comes from the file).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{PG_USER}@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates a database and returns its URL.
    pub async fn create_database(&self, name: &str) -> String {
        use sqlx::Connection;
        let opts = <sqlx::postgres::PgConnectOptions as std::str::FromStr>::from_str(&self.url("postgres"))
            .unwrap()
            .password(PG_PASSWORD);
        let mut c = sqlx::postgres::PgConnection::connect_with(&opts).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
        self.url(name)
    }

    /// The directory of the server (its log is `log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.running {
            let data = self.data();
            let exe = self.bin.join("pg_ctl");
            let args = ["-D", data.to_str().unwrap_or(""), "-m", "immediate", "-w", "stop"];
            let _ = if self.as_nobody {
                Command::new("runuser")
                    .args(["-u", "nobody", "--"])
                    .arg(&exe)
                    .args(args)
                    .output()
            } else {
                Command::new(&exe).args(args).output()
            };
        }
    }
}

// === a fresh user database of either backend ===

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty user database of one backend, with what keeps it alive.
pub struct Fresh {
    pub db: UserDatabase,
    pub dir: tempfile::TempDir,
    pub pg: Option<PgServer>,
}

impl Fresh {
    pub async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().unwrap();
        match backend {
            Backend::Sqlite => Self {
                db: UserDatabase::Sqlite(dir.path().join("users.db")),
                dir,
                pg: None,
            },
            Backend::Postgres => {
                let pg = PgServer::start();
                let url = pg.create_database("flowgate").await;
                Self {
                    db: UserDatabase::Postgres(PostgresDatabase {
                        url,
                        password: Some(PG_PASSWORD.into()),
                    }),
                    dir,
                    pg: Some(pg),
                }
            }
        }
    }

    /// The `identity:` block of a gateway config using this database (the PostgreSQL password
    /// from a file, as an operator would give it).
    pub fn identity_yaml(&self) -> String {
        match (&self.db, &self.pg) {
            (UserDatabase::Postgres(p), Some(pg)) => format!(
                "identity: {{ seed: seed.yaml, database: \"{}\", password_file: \"{}\" }}\n",
                p.url,
                pg.password_file().display()
            ),
            (UserDatabase::Sqlite(path), _) => format!(
                "identity: {{ seed: seed.yaml, database: \"sqlite://{}\" }}\n",
                path.display()
            ),
            _ => unreachable!(),
        }
    }

    pub async fn open(&self) -> UserStore {
        let cheap = HashParams {
            memory_kib: 8,
            iterations: 1,
            parallelism: 1,
        };
        UserStore::connect(&self.db, PasswordHasher::new(cheap))
            .await
            .unwrap_or_else(|e| panic!("open {}: {e}", self.db))
    }
}
