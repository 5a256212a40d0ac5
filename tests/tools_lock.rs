//! The Go tools are built from locked modules (`hack/tools/<tool>/go.mod` + `go.sum`), derived
//! from the pins in `hack/versions.env` by `hack/build-tools.sh lock`. These tests fail when:
//! - a lock requires another version of its tool's module than the pin (someone edited a
//!   `go.mod`, or a pin, without re-locking);
//! - a lock lacks the checksum of its own module, or replaces a module with a local path, or
//!   (Kubernetes, etcd) replaces a sibling module with another release than the pin's;
//! - a cached binary was built from other module versions than its lock: every module its
//!   embedded build info (`go version -m`) names must appear in the lock's `go.sum` with the
//!   same version and checksum.
//!
//! The pins are read from `hack/versions.env` here, not from the build script's output.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    // The checkout under test (set at run time; see tests/support's repo_root).
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// One tool of `hack/build-tools.sh list`.
#[derive(Debug, Clone)]
struct Tool {
    name: String,
    module: String,
    pin_var: String,
    packages: Vec<String>,
    binaries: Vec<String>,
}

fn tools() -> Vec<Tool> {
    let out = Command::new(repo_root().join("hack/build-tools.sh"))
        .arg("list")
        .output()
        .expect("run hack/build-tools.sh list");
    assert!(out.status.success(), "hack/build-tools.sh list failed");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let tools: Vec<Tool> = text
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 6, "unexpected line from build-tools.sh list: {l}");
            Tool {
                name: f[0].into(),
                module: f[1].into(),
                pin_var: f[2].into(),
                packages: f[4].split_whitespace().map(String::from).collect(),
                binaries: f[5].split_whitespace().map(String::from).collect(),
            }
        })
        .collect();
    assert!(
        tools.len() >= 6,
        "build-tools.sh lists {} tools",
        tools.len()
    );
    tools
}

/// `KEY=VALUE  # comment` lines of `hack/versions.env`.
fn pins() -> BTreeMap<String, String> {
    let text =
        std::fs::read_to_string(repo_root().join("hack/versions.env")).expect("versions.env");
    text.lines()
        .filter_map(|l| {
            let l = l.split('#').next().unwrap_or("").trim();
            let (k, v) = l.split_once('=')?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

/// What a lock's go.mod says.
#[derive(Debug, Default)]
struct GoMod {
    requires: BTreeMap<String, String>,
    tools: BTreeSet<String>,
    /// module => (replacement module, version or local path)
    replaces: BTreeMap<String, (String, String)>,
}

fn parse_gomod(text: &str) -> GoMod {
    let mut m = GoMod::default();
    let mut block: Option<&str> = None;
    for raw in text.lines() {
        let line = raw.split("//").next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if line == ")" {
            block = None;
            continue;
        }
        let (verb, rest) = match block {
            Some(b) => (b, line),
            None => match line.split_once(char::is_whitespace) {
                Some((v, r)) if r.trim() == "(" => {
                    block = Some(match v {
                        "require" => "require",
                        "replace" => "replace",
                        "tool" => "tool",
                        _ => "other",
                    });
                    continue;
                }
                Some((v, r)) => (v, r.trim()),
                None => continue,
            },
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        match verb {
            "require" if f.len() >= 2 => {
                m.requires.insert(f[0].into(), f[1].into());
            }
            "tool" if !f.is_empty() => {
                m.tools.insert(f[0].into());
            }
            "replace" => {
                if let Some(arrow) = f.iter().position(|x| *x == "=>") {
                    let to = f[arrow + 1..].to_vec();
                    m.replaces.insert(
                        f[0].into(),
                        (
                            to.first().copied().unwrap_or_default().into(),
                            to.get(1).copied().unwrap_or_default().into(),
                        ),
                    );
                }
            }
            _ => {}
        }
    }
    m
}

/// `module version hash` triples of a go.sum.
fn parse_gosum(text: &str) -> BTreeSet<(String, String, String)> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 3).then(|| (f[0].into(), f[1].into(), f[2].into()))
        })
        .collect()
}

/// Everything wrong with one tool's lock against its pin (empty when it agrees).
fn lock_problems(tool: &Tool, pin: &str, dir: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let (Ok(gomod), Ok(gosum)) = (
        std::fs::read_to_string(dir.join("go.mod")),
        std::fs::read_to_string(dir.join("go.sum")),
    ) else {
        return vec![format!("{}: go.mod or go.sum missing", dir.display())];
    };
    let m = parse_gomod(&gomod);
    let sums = parse_gosum(&gosum);
    match m.requires.get(&tool.module) {
        Some(v) if v == pin => {}
        Some(v) => problems.push(format!(
            "{}: go.mod requires {} {v}, but hack/versions.env pins {}={pin}",
            tool.name, tool.module, tool.pin_var
        )),
        None => problems.push(format!(
            "{}: go.mod does not require {}",
            tool.name, tool.module
        )),
    }
    for suffix in ["", "/go.mod"] {
        let v = format!("{pin}{suffix}");
        if !sums
            .iter()
            .any(|(p, ver, _)| *p == tool.module && *ver == v)
        {
            problems.push(format!(
                "{}: go.sum has no checksum for {} {v}",
                tool.name, tool.module
            ));
        }
    }
    for p in &tool.packages {
        let pkg = if p == "." {
            tool.module.clone()
        } else {
            format!("{}/{p}", tool.module)
        };
        if !m.tools.contains(&pkg) {
            problems.push(format!("{}: go.mod has no `tool {pkg}`", tool.name));
        }
    }
    // The sibling modules of Kubernetes (staging, v0.MINOR.PATCH) and etcd (same tag).
    let sibling_version = match tool.name.as_str() {
        "kubernetes" | "kubernetes-node" => {
            let parts: Vec<&str> = pin.trim_start_matches('v').split('.').collect();
            parts
                .get(1)
                .zip(parts.get(2))
                .map(|(mi, pa)| format!("v0.{mi}.{pa}"))
        }
        "etcd" => Some(pin.to_string()),
        _ => None,
    };
    for (from, (to, version)) in &m.replaces {
        if version.is_empty() || to.starts_with('.') || to.starts_with('/') {
            problems.push(format!(
                "{}: replace {from} => {to} is a local path",
                tool.name
            ));
        } else if let Some(sv) = &sibling_version
            && from == to
            && *version != *sv
        {
            problems.push(format!(
                "{}: replace {from} => {to} {version}, but the pin {pin} needs {sv}",
                tool.name
            ));
        }
    }
    if tool.name.starts_with("kubernetes") && !m.replaces.keys().any(|k| k == "k8s.io/api") {
        problems.push("kubernetes: go.mod does not replace the staging module k8s.io/api".into());
    }
    problems
}

#[test]
fn every_lock_agrees_with_its_pin() {
    let pins = pins();
    let tools = tools();
    let mut problems = Vec::new();
    for t in &tools {
        let Some(pin) = pins.get(&t.pin_var) else {
            problems.push(format!("{}: no {} in hack/versions.env", t.name, t.pin_var));
            continue;
        };
        problems.extend(lock_problems(
            t,
            pin,
            &repo_root().join("hack/tools").join(&t.name),
        ));
    }
    // Every lock directory belongs to a tool the build knows (no orphans).
    let names: BTreeSet<String> = tools.iter().map(|t| t.name.clone()).collect();
    for e in std::fs::read_dir(repo_root().join("hack/tools")).expect("hack/tools") {
        let n = e
            .expect("dir entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if !names.contains(&n) {
            problems.push(format!("hack/tools/{n} is no tool of hack/build-tools.sh"));
        }
    }
    assert!(
        problems.is_empty(),
        "tool locks disagree with hack/versions.env:\n  {}\nRun `hack/build-tools.sh lock <tool>` after changing a pin, \
         and never edit hack/tools/*/go.mod by hand.",
        problems.join("\n  ")
    );
}

/// The check must catch an edited go.mod and a missing go.sum line (it could pass vacuously).
#[test]
fn lock_check_catches_an_edited_gomod_and_a_missing_checksum() {
    let pins = pins();
    let tool = tools()
        .into_iter()
        .find(|t| t.name == "kubernetes")
        .expect("kubernetes tool");
    let pin = &pins[&tool.pin_var];
    let src = repo_root().join("hack/tools/kubernetes");
    let dir = tempfile::tempdir().expect("tempdir");
    let gomod = std::fs::read_to_string(src.join("go.mod")).expect("go.mod");
    let gosum = std::fs::read_to_string(src.join("go.sum")).expect("go.sum");
    std::fs::write(dir.path().join("go.sum"), &gosum).expect("write");

    std::fs::write(dir.path().join("go.mod"), &gomod).expect("write");
    assert_eq!(lock_problems(&tool, pin, dir.path()), Vec::<String>::new());

    let bumped = gomod.replace(
        &format!("k8s.io/kubernetes {pin}"),
        "k8s.io/kubernetes v1.37.99",
    );
    assert_ne!(bumped, gomod, "the pin {pin} is not in go.mod");
    std::fs::write(dir.path().join("go.mod"), &bumped).expect("write");
    let p = lock_problems(&tool, pin, dir.path());
    assert!(
        p.iter()
            .any(|x| x.contains("v1.37.99") && x.contains("pins")),
        "{p:?}"
    );

    let staging = gomod.replace("k8s.io/api v0.", "k8s.io/api v9.");
    std::fs::write(dir.path().join("go.mod"), &staging).expect("write");
    let p = lock_problems(&tool, pin, dir.path());
    assert!(p.iter().any(|x| x.contains("k8s.io/api")), "{p:?}");

    std::fs::write(dir.path().join("go.mod"), &gomod).expect("write");
    let cut: String = gosum
        .lines()
        .filter(|l| !l.starts_with(&format!("k8s.io/kubernetes {pin} ")))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(dir.path().join("go.sum"), cut).expect("write");
    let p = lock_problems(&tool, pin, dir.path());
    assert!(p.iter().any(|x| x.contains("no checksum")), "{p:?}");
}

/// `(path, version, hash)` of every module a Go binary was built from (`go version -m`),
/// replacements resolved.
fn build_modules(binary: &Path) -> Vec<(String, String, String)> {
    let out = Command::new("go")
        .args(["version", "-m"])
        .arg(binary)
        .output()
        .expect("run go version -m");
    assert!(
        out.status.success(),
        "go version -m {} failed",
        binary.display()
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut mods: Vec<(String, String, String)> = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line
            .split('\t')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        match f.first().copied() {
            // `mod` is the module of the built package (the tool's own), `dep` the others.
            Some("mod" | "dep") if f.len() >= 3 => {
                mods.push((
                    f[1].into(),
                    f[2].into(),
                    f.get(3).copied().unwrap_or("").into(),
                ));
            }
            Some("=>") if f.len() >= 3 => {
                if let Some(last) = mods.last_mut() {
                    *last = (
                        f[1].into(),
                        f[2].into(),
                        f.get(3).copied().unwrap_or("").into(),
                    );
                }
            }
            _ => {}
        }
    }
    mods
}

#[test]
fn cached_tool_binaries_were_built_from_their_locks() {
    let bindir = Command::new(repo_root().join("hack/build-tools.sh"))
        .arg("bindir")
        .output()
        .expect("run hack/build-tools.sh bindir");
    let bindir = PathBuf::from(String::from_utf8_lossy(&bindir.stdout).trim());
    let pins = pins();
    let mut problems = Vec::new();
    let mut checked = 0;
    for t in tools() {
        let pin = &pins[&t.pin_var];
        let sums = parse_gosum(
            &std::fs::read_to_string(repo_root().join("hack/tools").join(&t.name).join("go.sum"))
                .expect("go.sum"),
        );
        for b in &t.binaries {
            let path = bindir.join(&t.name).join(b);
            if !path.is_file() {
                problems.push(format!("{} is missing: run `make tools`", path.display()));
                continue;
            }
            let mods = build_modules(&path);
            if !mods.iter().any(|(p, v, _)| *p == t.module && v == pin) {
                problems.push(format!(
                    "{}: built from {} {}, not the pin {pin}",
                    path.display(),
                    t.module,
                    mods.iter()
                        .find(|(p, _, _)| *p == t.module)
                        .map(|(_, v, _)| v.as_str())
                        .unwrap_or("(absent)")
                ));
            }
            for (p, v, h) in &mods {
                if !sums.contains(&(p.clone(), v.clone(), h.clone())) {
                    problems.push(format!(
                        "{}: built from {p} {v} {h}, which hack/tools/{}/go.sum does not lock",
                        path.display(),
                        t.name
                    ));
                }
            }
            checked += mods.len();
        }
    }
    assert!(
        problems.is_empty(),
        "cached tools do not match their locks:\n  {}\nRun `make tools` (it rebuilds a tool whose lock changed).",
        problems.join("\n  ")
    );
    println!("{checked} module versions of the cached tool binaries match their locks");
    assert!(
        checked > 100,
        "only {checked} modules found in the tools' build info"
    );
}
