//! Loading: the public entry points that turn files into a validated [`Config`], with the
//! authentik blueprints a main file names (`blueprints:`) expanded through the importer. Lives
//! above `config` and `blueprint` so that neither imports the other: `config` validates sources,
//! `blueprint` turns authentik YAML into native YAML, and this module joins them.

use crate::blueprint;
use crate::config::{self, read_source, Config, ConfigError, ConfigErrors, Source};
use std::path::{Path, PathBuf};

impl Config {
    /// Reads and validates the main file at `path` and the files it includes.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let src = read_source(path)?;
        Self::from_sources(vec![src])
    }

    /// Validates a main file given as a string; includes resolve against the current directory.
    pub fn from_yaml_str(text: &str, name: &str) -> Result<Config, ConfigErrors> {
        Self::from_sources(vec![Source {
            name: name.into(),
            text: text.into(),
            base_dir: PathBuf::from("."),
        }])
    }

    /// Validates a main file (first) plus extra sources that are treated like included files,
    /// followed by whatever the main file's `include:` and `blueprints:` name on disk.
    pub fn from_sources(sources: Vec<Source>) -> Result<Config, ConfigErrors> {
        Self::from_sources_with(sources, &import_blueprint)
    }
}

/// Imports an authentik blueprint named by `blueprints:` into a native source; the notes list
/// what it could not express.
pub fn import_blueprint(path: &Path) -> Result<(Source, Vec<String>), Vec<ConfigError>> {
    let src = read_source(path).map_err(|e| e.0)?;
    let files = vec![(src.name.clone(), src.text.clone())];
    match blueprint::import::import(&files, &Default::default()) {
        Ok(imp) => {
            let notes = imp.unsupported.iter().map(|u| format!("not imported: {u}")).collect();
            Ok((
                Source {
                    name: format!("{} (imported)", src.name),
                    text: blueprint::import::to_yaml(&imp.doc, std::slice::from_ref(&src.name)),
                    base_dir: src.base_dir,
                },
                notes,
            ))
        }
        Err(errs) => Err(errs
            .into_iter()
            .map(|e| ConfigError {
                file: e.file,
                line: e.line,
                column: 1,
                path: e.place,
                message: e.message,
            })
            .collect()),
    }
}

/// Checks that an imported native document forms a valid config on its own (with a stand-in
/// main file and, when the document has none, a stand-in logout flow).
pub fn check_import(native_yaml: &str) -> Result<(), config::ConfigErrors> {
    let has_invalidation = serde_yaml::from_str::<serde_yaml::Value>(native_yaml)
        .ok()
        .and_then(|d| d.get("flows").cloned())
        .and_then(|f| f.as_sequence().cloned())
        .is_some_and(|f| {
            f.iter()
                .any(|f| f.get("designation").and_then(serde_yaml::Value::as_str) == Some("invalidation"))
        });
    let logout = if has_invalidation {
        ""
    } else {
        "flows:\n  - { slug: flowgate-import-check-logout, designation: invalidation, bindings: [{ stage: flowgate-import-check-logout, order: 0 }] }\nstages:\n  flowgate-import-check-logout: { type: user_logout }\n"
    };
    let main = format!("listen: {{ http: \"127.0.0.1:0\" }}\nmail: {{ transport: file }}\n{logout}");
    let base = std::env::temp_dir();
    config::Config::from_sources(vec![
        config::Source {
            name: "<import check>".into(),
            text: main,
            base_dir: base.clone(),
        },
        config::Source {
            name: "<imported>".into(),
            text: native_yaml.to_string(),
            base_dir: base,
        },
    ])
    .map(|_| ())
}
