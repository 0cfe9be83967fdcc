//! Configuration: YAML files in, validated [`Config`] out.
//!
//! ```text
//! load(path) ─▶ read main file ─▶ parse (serde_yaml + serde_path_to_error) ─▶ RawFile
//!            ─▶ expand `include:` globs ─▶ parse each included file
//!            ─▶ validate (all files; errors collected) ─▶ Config
//! ```
//! Parsing works on `(text, name)` pairs; only [`Config::load`] reads the disk (plus includes).
//! Every error names file, line, column and field path, and all errors of a load come together.

pub mod duration;
pub mod error;
mod flow_model;
pub mod ldap_model;
pub mod locate;
pub mod model;
mod policy_model;
mod presets;
pub mod raw;
pub mod raw_clients;
pub mod raw_sources;
pub mod schema;
mod source_model;
mod stage_model;
mod validate;
pub mod values;

pub use error::{ConfigError, ConfigErrors};
pub use model::*;
pub use presets::{preset, PRESET_NAMES};
pub use source_model::*;

use std::path::{Path, PathBuf};

/// One YAML text with the name used in errors and the directory relative paths resolve against.
#[derive(Debug, Clone)]
pub struct Source {
    /// Name shown in errors (usually the path).
    pub name: String,
    /// The YAML text.
    pub text: String,
    /// Directory for relative paths.
    pub base_dir: PathBuf,
}

/// Largest config file read, in bytes.
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;
/// Most files an `include:` list may pull in.
pub const MAX_INCLUDED_FILES: usize = 256;

/// Turns the authentik blueprint at a path named by `blueprints:` into a native source plus notes
/// on what it could not express. Given by the loader (`crate::loader`): `config` itself knows no
/// blueprint format.
pub type BlueprintImporter<'a> = &'a dyn Fn(&Path) -> Result<(Source, Vec<String>), Vec<ConfigError>>;

impl Config {
    /// Validates a main file (first) plus extra sources that are treated like included files,
    /// followed by whatever the main file's `include:` names on disk; `import_blueprint` expands
    /// the main file's `blueprints:` entries.
    pub fn from_sources_with(
        mut sources: Vec<Source>,
        import_blueprint: BlueprintImporter<'_>,
    ) -> Result<Config, ConfigErrors> {
        let mut errors = Vec::new();
        let mut notes = Vec::new();
        let mut files = Vec::new();
        let mut i = 0;
        while i < sources.len() {
            match parse_raw(&sources[i]) {
                Ok(raw) => {
                    if i == 0 {
                        let base = sources[0].base_dir.clone();
                        for (k, path) in raw.blueprints.iter().enumerate() {
                            match import_blueprint(&base.join(path)) {
                                Ok((src, mut n)) => {
                                    sources.push(src);
                                    notes.append(&mut n);
                                }
                                Err(mut e) => {
                                    if e.is_empty() {
                                        e.push(at(&sources[0], &format!("blueprints[{k}]"), "import failed".into()));
                                    }
                                    errors.append(&mut e);
                                }
                            }
                        }
                        for (k, pattern) in raw.include.iter().enumerate() {
                            match expand_include(&base, pattern) {
                                Ok(paths) if paths.is_empty() => errors.push(at(
                                    &sources[0],
                                    &format!("include[{k}]"),
                                    format!("pattern {pattern:?} matches no file"),
                                )),
                                Ok(paths) => {
                                    for p in paths {
                                        if sources.len() > MAX_INCLUDED_FILES {
                                            errors.push(at(
                                                &sources[0],
                                                &format!("include[{k}]"),
                                                format!("more than {MAX_INCLUDED_FILES} included files"),
                                            ));
                                            break;
                                        }
                                        match read_source(&p) {
                                            Ok(s) => sources.push(s),
                                            Err(e) => errors.extend(e.0),
                                        }
                                    }
                                }
                                Err(e) => errors.push(at(&sources[0], &format!("include[{k}]"), e)),
                            }
                        }
                    }
                    files.push(raw);
                }
                Err(e) => {
                    errors.push(e);
                    if i == 0 {
                        return Err(ConfigErrors(errors));
                    }
                    files.push(raw::RawFile::default());
                }
            }
            i += 1;
        }
        match validate::validate(&sources, validate::Parsed { files }) {
            Ok(mut cfg) if errors.is_empty() => {
                cfg.notes = notes;
                Ok(cfg)
            }
            Ok(_) => Err(ConfigErrors(errors)),
            Err(mut e) => {
                errors.append(&mut e.0);
                // Report in reading order: file by file, top to bottom.
                let order: Vec<String> = sources.iter().map(|s| s.name.clone()).collect();
                errors.sort_by_key(|e| (order.iter().position(|n| *n == e.file), e.line, e.column));
                Err(ConfigErrors(errors))
            }
        }
    }
}

fn at(src: &Source, path: &str, message: String) -> ConfigError {
    let pos = locate::locate(&src.text, &locate::parse_path(path));
    ConfigError {
        file: src.name.clone(),
        line: pos.map(|p| p.line).unwrap_or(1),
        column: pos.map(|p| p.column).unwrap_or(1),
        path: path.into(),
        message,
    }
}

/// Reads one file into a [`Source`].
pub fn read_source(path: &Path) -> Result<Source, ConfigErrors> {
    let name = path.display().to_string();
    let fail = |message: String| {
        ConfigErrors(vec![ConfigError {
            file: name.clone(),
            line: 0,
            column: 0,
            path: String::new(),
            message,
        }])
    };
    let bytes =
        crate::input_limits::read_capped(path, MAX_CONFIG_BYTES).map_err(|e| fail(format!("cannot read file: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|_| fail("file is not valid UTF-8".into()))?;
    let base_dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    Ok(Source { name, text, base_dir })
}

fn expand_include(base: &Path, pattern: &str) -> Result<Vec<PathBuf>, String> {
    let full = base.join(pattern);
    let full = full.to_str().ok_or_else(|| "path is not valid UTF-8".to_string())?;
    let paths = glob::glob(full).map_err(|e| format!("invalid pattern {pattern:?}: {e}"))?;
    let mut out: Vec<PathBuf> = paths.filter_map(Result::ok).filter(|p| p.is_file()).collect();
    out.sort();
    Ok(out)
}

/// Parses one source into its raw mirror, with a located error on failure.
fn parse_raw(src: &Source) -> Result<raw::RawFile, ConfigError> {
    if src.text.trim().is_empty() {
        return Ok(raw::RawFile::default());
    }
    if let Err(e) = crate::input_limits::check_yaml_nesting(&src.text) {
        return Err(ConfigError {
            file: src.name.clone(),
            line: e.line,
            column: e.column,
            path: String::new(),
            message: e.message,
        });
    }
    let de = serde_yaml::Deserializer::from_str(&src.text);
    match serde_path_to_error::deserialize::<_, raw::RawFile>(de) {
        Ok(r) => Ok(r),
        Err(e) => {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            let inner = e.into_inner();
            let (line, column) = match inner.location() {
                Some(l) => (l.line(), l.column()),
                None => locate::locate(&src.text, &locate::parse_path(&path))
                    .map(|p| (p.line, p.column))
                    .unwrap_or((1, 1)),
            };
            let mut message = inner.to_string();
            if let Some(idx) = message.find(" at line ") {
                message.truncate(idx);
            }
            // serde_yaml sometimes prefixes the message with (part of) the path; drop it.
            while let Some((head, tail)) = message.split_once(": ") {
                if !head.is_empty() && path.starts_with(head) {
                    message = tail.to_string();
                } else {
                    break;
                }
            }
            Err(ConfigError {
                file: src.name.clone(),
                line,
                column,
                path,
                message,
            })
        }
    }
}
