//! Besu's command line, as picocli parses it for `BesuCommand`, and its other option
//! sources: `BESU_*` environment variables, `--config-file` TOML and `--profile`.
//!
//! Sources (hyperledger/besu @ 3fd224e2, picocli 4.7.7 as Besu pins it in
//! `platform/build.gradle`):
//! - `BesuCommand.executeCommandLine`: a first parse that allows unmatched arguments and
//!   runs `rejectDuplicateScalarOptions` ("Option '<longest name>' should be specified
//!   only once" for a single-valued option given twice), then the real parse, in which
//!   unmatched arguments are refused (`createExecuteTask`: `setUnmatchedArgumentsAllowed
//!   (false)`) with picocli's `UnmatchedArgumentException`: "Unknown option: '--foo'"
//!   (several: "Unknown options: '--a', '--b'"; a word that is no option: "Unmatched
//!   argument at index N: 'x'").
//! - `BesuParameterExceptionHandler`: prints the message, picocli's "Possible solutions"
//!   line when there is one, a blank line, "To display full help:", "besu [COMMAND]
//!   --help", all on stderr, and exits with `exitCodeOnInvalidInput()`, picocli's
//!   `ExitCode.USAGE` = 2 (Besu sets no exit-code mapper). Startup failures thrown in
//!   `BesuCommand.run` are rethrown as `ParameterException` after logging "Failed to
//!   start Besu: <message>", so they exit 2 the same way.
//! - Value precedence (`ConfigDefaultValueProviderStrategy.createDefaultValueProvider`,
//!   `CascadingDefaultProvider`): the command line, then `EnvironmentVariableDefaultProvider`
//!   (`BESU_<NAME>`, `-` → `_`, upper case; also the legacy `PANTHEON_` prefix), then the
//!   TOML file (`TomlConfigurationDefaultProvider`), then the profile. A list given on the
//!   command line replaces the file's list.
//! - `TomlConfigurationDefaultProvider`: table headings are ignored (the last key of a
//!   dotted path is the option name); a key that is no option is refused with "Unknown
//!   option in TOML configuration file: <key>" ("Unknown options …: a, b"); an empty file
//!   "Unable to read from empty TOML configuration file."; arrays become comma-joined
//!   lists. `ConfigFileFinder`: "Unable to read TOML configuration, file not found: <f>",
//!   and `--config-file` together with `BESU_CONFIG_FILE` is refused.
//! - `ProfileFinder` / `InternalProfileName`: built-in profiles (case-insensitive), else
//!   "Unable to load external profile: <name>".
//!
//! Picocli details kept: `--name=value` and `--name value`; boolean options declared
//! without an arity are flags (`--x` = true, `--x=false` accepted attached only), with
//! `arity = "1"` they need a value; `1..*` lists take the following words up to the next
//! option and split on commas. Not kept: picocli's parameter labels in "Missing required
//! parameter" messages, short-option clustering, `@file` argument files, and suggestions
//! are sorted by name rather than in declaration order.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::option_table::OPTIONS;

/// How an option takes its values (from its Java type and picocli `arity`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `--help` / `-h` (picocli `mixinStandardHelpOptions`).
    Help,
    /// `--version` / `-V`.
    Version,
    /// A boolean without `arity`: `--x` alone means true; `--x=true|false` attached.
    Flag,
    /// A boolean with `arity = "1"`: `--x=true`, `--x true`.
    Bool1,
    /// A boolean with `arity = "0..1"`: `--x`, `--x=false`, `--x false`.
    Bool01,
    /// One value.
    Scalar,
    /// One optional value (`arity = "0..1"`).
    ScalarOrNone,
    /// A list, one argument per occurrence, split on commas.
    Multi,
    /// A list with `arity = "1..*"`: the following words up to the next option.
    MultiVarargs,
    /// A list with `arity = "0..*"` (`--bootnodes`): may be given with no value.
    MultiVarargsOrNone,
}

impl Kind {
    pub fn is_multi(self) -> bool {
        matches!(
            self,
            Kind::Multi | Kind::MultiVarargs | Kind::MultiVarargsOrNone
        )
    }

    pub fn is_boolean(self) -> bool {
        matches!(self, Kind::Flag | Kind::Bool1 | Kind::Bool01)
    }
}

/// One option of Besu's main command.
#[derive(Clone, Copy, Debug)]
pub struct OptSpec {
    pub names: &'static [&'static str],
    pub kind: Kind,
    pub hidden: bool,
}

impl OptSpec {
    /// The name options are keyed by here: the first declared.
    pub fn key(&self) -> &'static str {
        self.names[0]
    }

    /// picocli `OptionSpec.longestName()`: the longest name (the first of equal length).
    pub fn longest_name(&self) -> &'static str {
        let mut best = self.names[0];
        for n in self.names {
            if n.len() > best.len() {
                best = n;
            }
        }
        best
    }
}

/// Finds an option by any of its names.
pub fn find(name: &str) -> Option<&'static OptSpec> {
    OPTIONS.iter().find(|o| o.names.contains(&name))
}

/// A parameter error: Besu prints it and exits 2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamError {
    pub message: String,
    /// picocli's "Possible solutions: …" line, for an unknown option.
    pub suggestions: Vec<String>,
}

impl ParamError {
    pub fn new(message: impl Into<String>) -> ParamError {
        ParamError {
            message: message.into(),
            suggestions: Vec::new(),
        }
    }

    /// What `BesuParameterExceptionHandler.handleParseException` prints on stderr.
    pub fn stderr_text(&self) -> String {
        let mut out = format!("{}\n", self.message);
        if !self.suggestions.is_empty() {
            out.push_str(&format!(
                "Possible solutions: {}\n",
                self.suggestions.join(", ")
            ));
        }
        out.push_str("\nTo display full help:\nbesu [COMMAND] --help\n");
        out
    }
}

impl std::fmt::Display for ParamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ParamError {}

/// Where a value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    CommandLine,
    Environment,
    ConfigFile,
    Profile,
}

/// An option's value(s) after precedence: one entry for a scalar, the list for a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    pub values: Vec<String>,
    pub source: Source,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Outcome {
    Help,
    Version,
    Run(Resolved),
}

/// Every option that has a value, by [`OptSpec::key`].
#[derive(Clone, Debug, Default)]
pub struct Resolved {
    pub settings: BTreeMap<&'static str, Setting>,
}

impl Resolved {
    pub fn get(&self, name: &str) -> Option<&Setting> {
        let key = find(name)?.key();
        self.settings.get(key)
    }

    /// The last value of a scalar option.
    pub fn scalar(&self, name: &str) -> Option<&str> {
        self.get(name)
            .and_then(|s| s.values.last())
            .map(String::as_str)
    }

    /// The values of a list option (empty if unset).
    pub fn list(&self, name: &str) -> Vec<String> {
        self.get(name).map(|s| s.values.clone()).unwrap_or_default()
    }
}

/// The command line after picocli's parse: values by option, in order, and the
/// arguments no option took.
#[derive(Debug, Default)]
struct CommandLine {
    /// Values per option key; a scalar keeps every occurrence (for the duplicate check).
    values: BTreeMap<&'static str, Vec<String>>,
    /// Matched options in the order first matched.
    order: Vec<&'static OptSpec>,
    unmatched: Vec<String>,
    /// The index of the first unmatched argument.
    first_unmatched: Option<usize>,
    help: bool,
    version: bool,
}

/// picocli `CommandSpec.resemblesOption`: starts with `-` (and is not just `-`).
fn resembles_option(arg: &str) -> bool {
    arg.len() > 1 && arg.starts_with('-')
}

fn split_list(value: &str) -> Vec<String> {
    value.split(',').map(str::to_string).collect()
}

/// picocli's `BooleanConverter`: `true`/`false`, any case.
pub fn parse_bool(option: &str, value: &str) -> Result<bool, ParamError> {
    if value.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(ParamError::new(format!(
            "Invalid value for option '{option}': '{value}' is not a boolean"
        )))
    }
}

fn missing(spec: &OptSpec) -> ParamError {
    ParamError::new(format!(
        "Missing required parameter for option '{}'",
        spec.longest_name()
    ))
}

/// picocli's parse of `args` against [`OPTIONS`] (unmatched arguments collected).
fn parse_command_line(args: &[String]) -> Result<CommandLine, ParamError> {
    let mut cl = CommandLine::default();
    let mut i = 0;
    let mut end_of_options = false;
    while i < args.len() {
        let arg = &args[i];
        let index = i;
        i += 1;
        if end_of_options || !resembles_option(arg) {
            if !end_of_options && arg == "--" {
                end_of_options = true;
                continue;
            }
            cl.first_unmatched.get_or_insert(index);
            cl.unmatched.push(arg.clone());
            continue;
        }
        let (name, attached) = match find(arg) {
            Some(_) => (arg.as_str(), None),
            None => match arg.split_once('=') {
                Some((n, v)) if find(n).is_some() => (n, Some(v.to_string())),
                _ => {
                    cl.first_unmatched.get_or_insert(index);
                    cl.unmatched.push(arg.clone());
                    continue;
                }
            },
        };
        let spec = find(name).expect("found above");
        let is_option_next = |j: usize| args.get(j).is_some_and(|a| resembles_option(a));
        let mut take: Vec<String> = Vec::new();
        match spec.kind {
            Kind::Help => cl.help = true,
            Kind::Version => cl.version = true,
            Kind::Flag => {
                let v = match attached {
                    Some(v) => parse_bool(spec.longest_name(), &v)?,
                    None => true,
                };
                take.push(v.to_string());
            }
            Kind::Bool1 => {
                let v = match attached {
                    Some(v) => v,
                    None => {
                        if i >= args.len() || is_option_next(i) {
                            return Err(missing(spec));
                        }
                        i += 1;
                        args[i - 1].clone()
                    }
                };
                take.push(parse_bool(spec.longest_name(), &v)?.to_string());
            }
            Kind::Bool01 => {
                let v = match attached {
                    Some(v) => parse_bool(spec.longest_name(), &v)?,
                    None => match args.get(i) {
                        Some(next)
                            if next.eq_ignore_ascii_case("true")
                                || next.eq_ignore_ascii_case("false") =>
                        {
                            i += 1;
                            next.eq_ignore_ascii_case("true")
                        }
                        _ => true,
                    },
                };
                take.push(v.to_string());
            }
            Kind::Scalar => {
                let v = match attached {
                    Some(v) => v,
                    None => {
                        if i >= args.len() || is_option_next(i) {
                            return Err(missing(spec));
                        }
                        i += 1;
                        args[i - 1].clone()
                    }
                };
                take.push(v);
            }
            Kind::ScalarOrNone => {
                let v = match attached {
                    Some(v) => v,
                    None if i < args.len() && !is_option_next(i) => {
                        i += 1;
                        args[i - 1].clone()
                    }
                    None => String::new(),
                };
                take.push(v);
            }
            Kind::Multi => {
                let v = match attached {
                    Some(v) => v,
                    None => {
                        if i >= args.len() || is_option_next(i) {
                            return Err(missing(spec));
                        }
                        i += 1;
                        args[i - 1].clone()
                    }
                };
                take.extend(split_list(&v));
            }
            Kind::MultiVarargs | Kind::MultiVarargsOrNone => {
                if let Some(v) = attached {
                    take.extend(split_list(&v));
                } else {
                    while i < args.len() && !is_option_next(i) {
                        take.extend(split_list(&args[i]));
                        i += 1;
                    }
                    if take.is_empty() && spec.kind == Kind::MultiVarargs {
                        return Err(missing(spec));
                    }
                }
            }
        }
        if !matches!(spec.kind, Kind::Help | Kind::Version) {
            if !cl.values.contains_key(spec.key()) {
                cl.order.push(spec);
            }
            cl.values.entry(spec.key()).or_default().extend(take);
        }
    }
    Ok(cl)
}

/// `BesuCommand.rejectDuplicateScalarOptions`.
fn reject_duplicate_scalars(cl: &CommandLine) -> Result<(), ParamError> {
    for spec in &cl.order {
        if spec.kind.is_multi() {
            continue;
        }
        if cl.values.get(spec.key()).is_some_and(|v| v.len() > 1) {
            return Err(ParamError::new(format!(
                "Option '{}' should be specified only once",
                spec.longest_name()
            )));
        }
    }
    Ok(())
}

/// picocli `UnmatchedArgumentException`.
fn unmatched_error(cl: &CommandLine) -> ParamError {
    let quoted: Vec<String> = cl.unmatched.iter().map(|a| format!("'{a}'")).collect();
    let plural = if cl.unmatched.len() == 1 { "" } else { "s" };
    let first = &cl.unmatched[0];
    let message = if resembles_option(first) {
        format!("Unknown option{plural}: {}", quoted.join(", "))
    } else {
        let at = if cl.unmatched.len() == 1 {
            "at"
        } else {
            "from"
        };
        format!(
            "Unmatched argument{plural} {at} index {}: {}",
            cl.first_unmatched.unwrap_or(0),
            quoted.join(", ")
        )
    };
    let mut err = ParamError::new(message);
    if resembles_option(first) {
        // `getSuggestions`: visible options whose name (without dashes) starts with the
        // first two characters of the unknown one's.
        let stripped = first.trim_start_matches('-');
        let stripped = stripped.split('=').next().unwrap_or(stripped);
        let prefix: String = stripped.chars().take(2).collect();
        let mut names: Vec<String> = OPTIONS
            .iter()
            .filter(|o| !o.hidden)
            .flat_map(|o| o.names.iter())
            .filter(|n| n.trim_start_matches('-').starts_with(&prefix))
            .map(|n| n.to_string())
            .collect();
        names.sort();
        err.suggestions = names;
    }
    err
}

/// A TOML document's option values, by option key.
fn toml_values(
    text: &str,
    path_for_errors: &str,
) -> Result<BTreeMap<&'static str, Vec<String>>, ParamError> {
    let doc: toml_edit::Document<String> = text.parse().map_err(|e: toml_edit::TomlError| {
        ParamError::new(format!(
            "Invalid TOML configuration: {}",
            e.to_string().trim()
        ))
    })?;
    let mut leaves: Vec<(String, toml_edit::Item)> = Vec::new();
    fn walk(table: &toml_edit::Table, out: &mut Vec<(String, toml_edit::Item)>) {
        for (k, v) in table.iter() {
            match v {
                toml_edit::Item::Table(t) => walk(t, out),
                toml_edit::Item::Value(toml_edit::Value::InlineTable(t)) => {
                    walk(&t.clone().into_table(), out)
                }
                other => out.push((k.to_string(), other.clone())),
            }
        }
    }
    walk(doc.as_table(), &mut leaves);
    if leaves.is_empty() {
        return Err(ParamError::new(
            "Unable to read from empty TOML configuration file.",
        ));
    }
    let unknown: BTreeSet<&String> = leaves
        .iter()
        .map(|(k, _)| k)
        .filter(|k| find(&format!("--{k}")).is_none())
        .collect();
    if !unknown.is_empty() {
        let list: Vec<&str> = unknown.iter().map(|s| s.as_str()).collect();
        return Err(ParamError::new(format!(
            "Unknown option{} in TOML configuration file: {}",
            if list.len() > 1 { "s" } else { "" },
            list.join(", ")
        )));
    }
    let mut out = BTreeMap::new();
    for (key, item) in leaves {
        let spec = find(&format!("--{key}")).expect("checked above");
        let name = spec.longest_name();
        let bad = |what: &str| {
            ParamError::new(format!(
                "Invalid value for option '{name}' in TOML configuration file {path_for_errors}: {what}"
            ))
        };
        let value = item.as_value().ok_or_else(|| bad("not a value"))?;
        let scalar = |v: &toml_edit::Value| -> Option<String> {
            match v {
                toml_edit::Value::String(s) => Some(s.value().clone()),
                toml_edit::Value::Integer(i) => Some(i.value().to_string()),
                toml_edit::Value::Float(f) => Some(f.value().to_string()),
                toml_edit::Value::Boolean(b) => Some(b.value().to_string()),
                _ => None,
            }
        };
        let values: Vec<String> = if spec.kind.is_boolean() {
            match value {
                toml_edit::Value::Boolean(b) => vec![b.value().to_string()],
                _ => return Err(bad("expected a boolean")),
            }
        } else if let toml_edit::Value::Array(a) = value {
            // `decodeTomlArray`: the elements joined by commas, read as a list.
            let items: Option<Vec<String>> = a.iter().map(scalar).collect();
            let joined = items.ok_or_else(|| bad("an array of scalars expected"))?;
            if spec.kind.is_multi() {
                joined.iter().flat_map(|s| split_list(s)).collect()
            } else {
                vec![joined.join(",")]
            }
        } else {
            let s = scalar(value).ok_or_else(|| bad("not a scalar"))?;
            if spec.kind.is_multi() {
                split_list(&s)
            } else {
                vec![s]
            }
        };
        out.insert(spec.key(), values);
    }
    Ok(out)
}

/// The TOML of Besu's built-in profiles (`config/src/main/resources/profiles/*.toml`),
/// by `InternalProfileName` (matched case-insensitively).
fn internal_profile(name: &str) -> Option<&'static str> {
    const ENTERPRISE: &str = "sync-mode=\"FULL\"\ndata-storage-format=\"FOREST\"\nsync-min-peers=1\nremote-connections-limit-enabled=false\ntx-pool=\"SEQUENCED\"\ntx-pool-no-local-priority=true\ntx-pool-limit-by-account-percentage=0.15\nrpc-http-max-active-connections=300\nmin-gas-price=0\nbonsai-limit-trie-logs-enabled=false\n";
    let profiles: [(&str, &str); 7] = [
        (
            "PERFORMANCE",
            "Xplugin-rocksdb-high-spec-enabled=true\nbonsai-parallel-tx-processing-enabled=true\n",
        ),
        (
            "PERFORMANCE_RPC",
            "Xplugin-rocksdb-high-spec-enabled=true\ncache-last-blocks=2048\n",
        ),
        ("STAKER", "network=\"MAINNET\"\n"),
        (
            "MINIMALIST_STAKER",
            "sync-mode=\"SNAP\"\ndata-storage-format=\"BONSAI\"\nmax-peers=25\n",
        ),
        ("ENTERPRISE", ENTERPRISE),
        ("PRIVATE", ENTERPRISE),
        ("DEV", "network=\"DEV\"\n"),
    ];
    profiles
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, t)| *t)
}

/// The value of an option from the environment (`EnvironmentVariableDefaultProvider`).
fn env_value(spec: &OptSpec, env: &BTreeMap<String, String>) -> Option<String> {
    for name in spec.names.iter().filter(|n| n.starts_with("--")) {
        let suffix = name[2..].replace('-', "_").to_uppercase();
        for prefix in ["BESU_", "PANTHEON_"] {
            if let Some(v) = env.get(&format!("{prefix}{suffix}")) {
                return Some(v.clone());
            }
        }
    }
    None
}

/// Parses `args` (without the program name) and merges the other sources, as Besu does
/// before it starts. `cwd` resolves a relative `--config-file`.
pub fn parse(
    args: &[String],
    env: &BTreeMap<String, String>,
    cwd: &Path,
) -> Result<Outcome, ParamError> {
    let cl = parse_command_line(args)?;
    reject_duplicate_scalars(&cl)?;
    if cl.help {
        return Ok(Outcome::Help);
    }
    if cl.version {
        return Ok(Outcome::Version);
    }

    // `ConfigFileFinder` and `ProfileFinder`.
    let cli_scalar = |name: &str| {
        find(name)
            .and_then(|s| cl.values.get(s.key()))
            .and_then(|v| v.last().cloned())
    };
    let config_file = match (cli_scalar("--config-file"), env.get("BESU_CONFIG_FILE")) {
        (Some(opt), Some(envv)) => {
            return Err(ParamError::new(format!(
                "Both BESU_CONFIG_FILE={envv} and --config-file [{opt}] specified. Please specify only one."
            )));
        }
        (Some(opt), None) => {
            let path = cwd.join(&opt);
            if !path.exists() {
                return Err(ParamError::new(format!(
                    "Unable to read TOML configuration, file not found: {opt}"
                )));
            }
            Some(path)
        }
        (None, Some(envv)) => {
            let path = cwd.join(envv);
            if !path.exists() {
                return Err(ParamError::new(format!(
                    "TOML file BESU_CONFIG_FILE specified in environment variable {envv} not found"
                )));
            }
            Some(path)
        }
        (None, None) => None,
    };
    let profile = match (cli_scalar("--profile"), env.get("BESU_PROFILE")) {
        (Some(opt), Some(envv)) => {
            return Err(ParamError::new(format!(
                "Both BESU_PROFILE={envv} and --profile [{opt}] specified. Please specify only one."
            )));
        }
        (Some(p), None) => Some(p),
        (None, Some(p)) => Some(p.clone()),
        (None, None) => None,
    };

    let file_values = match &config_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|_| {
                ParamError::new("Unable to read TOML configuration, file not found.")
            })?;
            toml_values(&text, &path.display().to_string())?
        }
        None => BTreeMap::new(),
    };
    let profile_values = match &profile {
        Some(name) => match internal_profile(name) {
            Some(text) => toml_values(text, &format!("profile {name}"))?,
            None => {
                return Err(ParamError::new(format!(
                    "Unable to load external profile: {name}"
                )));
            }
        },
        None => BTreeMap::new(),
    };

    if !cl.unmatched.is_empty() {
        return Err(unmatched_error(&cl));
    }

    let mut resolved = Resolved::default();
    for spec in OPTIONS {
        let key = spec.key();
        let setting = if let Some(v) = cl.values.get(key) {
            Some(Setting {
                values: if spec.kind.is_multi() {
                    v.clone()
                } else {
                    v.last().cloned().into_iter().collect()
                },
                source: Source::CommandLine,
            })
        } else if let Some(v) = env_value(spec, env) {
            let values = if spec.kind.is_multi() {
                split_list(&v)
            } else if spec.kind.is_boolean() {
                vec![parse_bool(spec.longest_name(), &v)?.to_string()]
            } else {
                vec![v]
            };
            Some(Setting {
                values,
                source: Source::Environment,
            })
        } else if let Some(v) = file_values.get(key) {
            Some(Setting {
                values: v.clone(),
                source: Source::ConfigFile,
            })
        } else {
            profile_values.get(key).map(|v| Setting {
                values: v.clone(),
                source: Source::Profile,
            })
        };
        if let Some(s) = setting {
            resolved.settings.insert(key, s);
        }
    }
    Ok(Outcome::Run(resolved))
}

/// The text `besu --help` prints here: the options the stand-in acts on.
pub fn help_text() -> String {
    let mut out = String::from(
        "Usage: besu [OPTIONS]\n\nbesu-standin: a stand-in for Hyperledger Besu, for tests (not a client).\n\
         It accepts Besu's command line, config file and environment variables, and acts on:\n",
    );
    for name in super::config::MODELLED {
        out.push_str(&format!("  {name}\n"));
    }
    out.push_str("Every other Besu option is accepted and ignored; anything else is refused.\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn run(list: &[&str]) -> Result<Resolved, ParamError> {
        run_env(list, &[])
    }

    fn run_env(list: &[&str], env: &[(&str, &str)]) -> Result<Resolved, ParamError> {
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match parse(&args(list), &env, Path::new("/"))? {
            Outcome::Run(r) => Ok(r),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_option_name_is_unique() {
        let mut seen = BTreeSet::new();
        for o in OPTIONS {
            for n in o.names {
                assert!(seen.insert(*n), "{n} twice");
            }
        }
        // The options the operator renders are all known.
        for n in [
            "--config-file",
            "--genesis-file",
            "--data-path",
            "--node-private-key-file",
            "--nat-method",
            "--p2p-interface",
            "--p2p-port",
            "--p2p-host",
            "--discovery-enabled",
            "--bootnodes",
            "--static-nodes-file",
            "--rpc-http-enabled",
            "--rpc-http-host",
            "--rpc-http-port",
            "--rpc-http-api",
            "--host-allowlist",
            "--rpc-ws-enabled",
            "--rpc-ws-host",
            "--rpc-ws-port",
            "--rpc-ws-api",
            "--metrics-enabled",
            "--metrics-host",
            "--metrics-port",
            "--sync-mode",
            "--min-gas-price",
            "--Xdns-enabled",
            "--Xdns-update-enabled",
            "--profile",
            "--max-peers",
        ] {
            assert!(find(n).is_some(), "{n}");
        }
    }

    /// picocli's `UnmatchedArgumentException` text, and the exit-code-2 shape of
    /// `BesuParameterExceptionHandler`.
    #[test]
    fn unknown_options_are_refused_like_picocli() {
        let e = run(&["--foo"]).unwrap_err();
        assert_eq!(e.message, "Unknown option: '--foo'");
        assert!(e.stderr_text().starts_with("Unknown option: '--foo'\n"));
        assert!(
            e.stderr_text()
                .ends_with("\nTo display full help:\nbesu [COMMAND] --help\n")
        );
        let e = run(&["--data-path=/d", "--nope=1", "--zzz"]).unwrap_err();
        assert_eq!(e.message, "Unknown options: '--nope=1', '--zzz'");
        let e = run(&["--p2p-port", "1", "stray"]).unwrap_err();
        assert_eq!(e.message, "Unmatched argument at index 2: 'stray'");
        // Suggestions: visible names sharing the first two letters.
        let e = run(&["--rpc-htp-enabled"]).unwrap_err();
        assert!(
            e.suggestions.contains(&"--rpc-http-enabled".to_string()),
            "{e:?}"
        );
        assert!(!e.suggestions.iter().any(|s| s.starts_with("--X")));
        // Option names are case-sensitive.
        assert_eq!(
            run(&["--xdns-enabled=true"]).unwrap_err().message,
            "Unknown option: '--xdns-enabled=true'"
        );
    }

    /// `BesuCommand.rejectDuplicateScalarOptions`, named by `longestName()`.
    #[test]
    fn duplicate_scalars_are_refused() {
        assert_eq!(
            run(&["--p2p-port=1", "--p2p-port", "2"])
                .unwrap_err()
                .message,
            "Option '--p2p-port' should be specified only once"
        );
        assert_eq!(
            run(&["--max-peers=1", "--p2p-peer-upper-bound=2"])
                .unwrap_err()
                .message,
            "Option '--p2p-peer-upper-bound' should be specified only once"
        );
        assert_eq!(
            run(&["--rpc-http-enabled", "--rpc-http-enabled"])
                .unwrap_err()
                .message,
            "Option '--rpc-http-enabled' should be specified only once"
        );
        // Lists may repeat; their values add up.
        let r = run(&["--rpc-http-api=ETH", "--rpc-http-api", "NET,WEB3", "QBFT"]).unwrap();
        assert_eq!(r.list("--rpc-http-api"), ["ETH", "NET", "WEB3", "QBFT"]);
        // The duplicate is reported before an unknown option (first parse).
        assert_eq!(
            run(&["--nope", "--p2p-port=1", "--p2p-port=2"])
                .unwrap_err()
                .message,
            "Option '--p2p-port' should be specified only once"
        );
    }

    #[test]
    fn booleans_follow_their_arity() {
        let r = run(&["--rpc-http-enabled", "--metrics-enabled=false"]).unwrap();
        assert_eq!(r.scalar("--rpc-http-enabled"), Some("true"));
        assert_eq!(r.scalar("--metrics-enabled"), Some("false"));
        // arity = "1": a value is required, attached or not.
        let r = run(&["--Xdns-enabled", "TRUE", "--discovery-enabled=false"]).unwrap();
        assert_eq!(r.scalar("--Xdns-enabled"), Some("true"));
        assert_eq!(r.scalar("--discovery-enabled"), Some("false"));
        assert_eq!(
            run(&["--Xdns-enabled"]).unwrap_err().message,
            "Missing required parameter for option '--Xdns-enabled'"
        );
        assert_eq!(
            run(&["--Xdns-enabled=yes"]).unwrap_err().message,
            "Invalid value for option '--Xdns-enabled': 'yes' is not a boolean"
        );
        // A flag does not take a separate word: it stays unmatched.
        assert_eq!(
            run(&["--rpc-http-enabled", "false"]).unwrap_err().message,
            "Unmatched argument at index 1: 'false'"
        );
        assert_eq!(
            run(&["--data-path"]).unwrap_err().message,
            "Missing required parameter for option '--data-path'"
        );
    }

    /// Command line over environment over config file over profile.
    #[test]
    fn precedence_command_line_env_file_profile() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(
            &file,
            "# comment\ndata-path=\"/from-file\"\np2p-port=30305\nrpc-http-api=[\"ETH\", \"QBFT\"]\nmin-gas-price=5\nbootnodes=[]\n[Section]\nmax-peers=7\nrpc-http-enabled=true\n",
        )
        .unwrap();
        let f = format!("--config-file={}", file.display());
        let r = run_env(
            &[&f, "--data-path=/cli", "--profile=enterprise"],
            &[("BESU_P2P_PORT", "30309"), ("BESU_MAX_PEERS", "9")],
        )
        .unwrap();
        assert_eq!(r.scalar("--data-path"), Some("/cli"));
        assert_eq!(r.get("--data-path").unwrap().source, Source::CommandLine);
        assert_eq!(r.scalar("--p2p-port"), Some("30309"));
        assert_eq!(r.get("--p2p-port").unwrap().source, Source::Environment);
        // Under a table heading, still an option.
        assert_eq!(r.scalar("--max-peers"), Some("9"));
        assert_eq!(r.scalar("--rpc-http-enabled"), Some("true"));
        assert_eq!(r.list("--rpc-http-api"), ["ETH", "QBFT"]);
        // The file's min-gas-price beats the ENTERPRISE profile's 0; the profile fills in.
        assert_eq!(r.scalar("--min-gas-price"), Some("5"));
        assert_eq!(r.scalar("--sync-mode"), Some("FULL"));
        assert_eq!(r.get("--sync-mode").unwrap().source, Source::Profile);
        // A list on the command line replaces the file's.
        let r = run(&[&f, "--rpc-http-api=NET"]).unwrap();
        assert_eq!(r.list("--rpc-http-api"), ["NET"]);
    }

    #[test]
    fn config_file_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "data-path=\"/d\"\nno-such-option=1\nzz=2\n").unwrap();
        let f = format!("--config-file={}", file.display());
        assert_eq!(
            run(&[&f]).unwrap_err().message,
            "Unknown options in TOML configuration file: no-such-option, zz"
        );
        std::fs::write(&file, "data-path=\"/d\"\nbogus=1\n").unwrap();
        assert_eq!(
            run(&[&f]).unwrap_err().message,
            "Unknown option in TOML configuration file: bogus"
        );
        std::fs::write(&file, "").unwrap();
        assert_eq!(
            run(&[&f]).unwrap_err().message,
            "Unable to read from empty TOML configuration file."
        );
        std::fs::write(&file, "data-path=\n").unwrap();
        assert!(
            run(&[&f])
                .unwrap_err()
                .message
                .starts_with("Invalid TOML configuration: ")
        );
        std::fs::write(&file, "rpc-http-enabled=\"true\"\n").unwrap();
        assert!(
            run(&[&f])
                .unwrap_err()
                .message
                .contains("expected a boolean")
        );
        let missing = dir.path().join("missing.toml");
        assert_eq!(
            run(&[&format!("--config-file={}", missing.display())])
                .unwrap_err()
                .message,
            format!(
                "Unable to read TOML configuration, file not found: {}",
                missing.display()
            )
        );
        std::fs::write(&file, "data-path=\"/d\"\n").unwrap();
        let path = file.display().to_string();
        assert!(
            run_env(&[&f], &[("BESU_CONFIG_FILE", path.as_str())])
                .unwrap_err()
                .message
                .starts_with("Both BESU_CONFIG_FILE=")
        );
        assert_eq!(
            run(&["--profile=nope"]).unwrap_err().message,
            "Unable to load external profile: nope"
        );
    }

    #[test]
    fn help_and_version() {
        let env = BTreeMap::new();
        assert!(matches!(
            parse(&args(&["--help"]), &env, Path::new("/")),
            Ok(Outcome::Help)
        ));
        assert!(matches!(
            parse(&args(&["-V"]), &env, Path::new("/")),
            Ok(Outcome::Version)
        ));
    }
}
