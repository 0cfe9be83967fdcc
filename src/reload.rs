//! Reloading the running config (SIGHUP, the file watcher, `flowgate reload`): a new config
//! is built beside the running one and swapped in atomically; settings that need a restart are
//! kept and named in the log.

use super::*;

/// Sizes and modification times of the config files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigFingerprint(Vec<(std::path::PathBuf, u64, Option<std::time::SystemTime>)>);

impl ConfigFingerprint {
    /// The fingerprint of `files` now (missing files count, as absent).
    pub fn of(files: &[std::path::PathBuf]) -> Self {
        let mut v: Vec<_> = files
            .iter()
            .map(|p| {
                let m = std::fs::metadata(p).ok();
                (
                    p.clone(),
                    m.as_ref().map(|m| m.len()).unwrap_or(0),
                    m.and_then(|m| m.modified().ok()),
                )
            })
            .collect();
        v.sort();
        v.dedup();
        Self(v)
    }
}

/// The settings that change only with a restart and differ between `old` and `new`, by name:
/// the listeners, the database, session sizing, connection limits and timeouts.
fn restart_only(old: &Config, new: &Config) -> Vec<&'static str> {
    let listen = |c: &Config| (c.listen.http, c.listen.https.as_ref().map(|h| h.addr), c.listen.workers);
    let (os, ns) = (&old.session, &new.session);
    let (ol, nl) = (&old.limits, &new.limits);
    [
        ("listen", listen(old) != listen(new)),
        ("identity", old.identity.database != new.identity.database),
        ("session.store", os.store != ns.store),
        ("session.max_sessions", os.max_sessions != ns.max_sessions),
        (
            "session.max_pending_flows",
            os.max_pending_flows != ns.max_pending_flows,
        ),
        ("limits.max_connections", ol.max_connections != nl.max_connections),
        ("limits.header_timeout", ol.header_timeout != nl.header_timeout),
        ("limits.keepalive_timeout", ol.keepalive_timeout != nl.keepalive_timeout),
        ("limits.shutdown_timeout", ol.shutdown_timeout != nl.shutdown_timeout),
        (
            "admin",
            old.admin.as_ref().map(|a| (a.listen, a.token.clone()))
                != new.admin.as_ref().map(|a| (a.listen, a.token.clone())),
        ),
        ("events", old.events != new.events),
    ]
    .into_iter()
    .filter_map(|(name, changed)| changed.then_some(name))
    .collect()
}

/// Why a reload did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The new config has errors; the old one stays.
    #[error("{0}")]
    Config(#[from] config::ConfigErrors),
    /// The new config could not be put in place (templates, mail); the old one stays.
    #[error("{0}")]
    Build(#[from] GatewayError),
}

impl Running {
    /// Replaces the running config with `config` atomically: requests already running finish
    /// on the old one, sessions and the user store are kept. Settings that need a restart
    /// (listeners, the database, session sizing) are kept as they are and logged.
    pub fn reload_with(&self, config: Config) -> Result<(), ReloadError> {
        let result = self.swap_config(config);
        self.note_reload(result.is_ok(), result.as_ref().err().map(|_| "build_failed"));
        result
    }

    /// Counts a reload and writes its audit event.
    fn note_reload(&self, ok: bool, reason: Option<&str>) {
        let t = &self.shared.telemetry;
        t.metrics.reload(ok);
        t.audit.emit(telemetry::AuditEvent {
            event: "reload",
            result: if ok { "success" } else { "failure" },
            reason,
            ..Default::default()
        });
    }

    fn swap_config(&self, config: Config) -> Result<(), ReloadError> {
        let state = build_state(&config, &self.shared)?;
        let Ok(mut old) = self.running_config.lock() else {
            return Err(ReloadError::Build(GatewayError::Templates(
                "reload lock poisoned".into(),
            )));
        };
        let restart = restart_only(&old, &config);
        if !restart.is_empty() {
            tracing::warn!(settings = ?restart, "these settings change only with a restart; the rest is reloaded");
        }
        self.current.store(Arc::new(state));
        tracing::info!(config = %config.source, flows = config.flows.len(), apps = config.apps.len(), "config reloaded");
        *old = config;
        Ok(())
    }

    /// Reads `path` and reloads; on any error the running config stays and every error is
    /// logged and returned.
    pub fn reload(&self, path: &std::path::Path) -> Result<(), ReloadError> {
        let result = match Config::load(path) {
            Ok(c) => self.reload_with(c),
            Err(e) => {
                self.note_reload(false, Some("invalid_config"));
                Err(ReloadError::from(e))
            }
        };
        if let Err(e) = &result {
            for line in e.to_string().lines() {
                tracing::error!("reload refused: {line}");
            }
        }
        result
    }

    /// Reloads from `path` when any file of the running config (or `path` itself) changed
    /// since `seen` (size or modification time); `None` when nothing changed. The file watcher
    /// of `flowgate run` calls this every few seconds.
    pub fn reload_if_changed(
        &self,
        path: &std::path::Path,
        seen: &mut ConfigFingerprint,
    ) -> Option<Result<(), ReloadError>> {
        let mut files = self.config_files();
        files.push(path.to_path_buf());
        let now = ConfigFingerprint::of(&files);
        if seen.0.is_empty() {
            *seen = now;
            return None;
        }
        if now == *seen {
            return None;
        }
        tracing::info!("config files changed; reloading");
        let result = self.reload(path);
        // Remember the new state either way: a broken file is reported once, not every tick.
        let mut files = self.config_files();
        files.push(path.to_path_buf());
        *seen = ConfigFingerprint::of(&files);
        Some(result)
    }

    /// The files the running config was read from (main, included, imported).
    pub fn config_files(&self) -> Vec<std::path::PathBuf> {
        self.running_config.lock().map(|c| c.paths.clone()).unwrap_or_default()
    }
}
