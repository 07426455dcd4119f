//! The `kubeactor` binary's configuration errors: whatever the layer (file, environment,
//! flag) and whatever the problem (unknown key, wrong type, invalid value), the user sees ONE
//! line on stderr naming the key and where it came from, and exit status 2 — never a panic.
//!
//! Every case here fails while loading the configuration, before anything starts, so these
//! tests never run the daemon and need no timing.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

fn kubeactor(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubeactor"));
    cmd.args(args);
    // Isolate from the developer's environment: only the variables a case sets apply.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("KUBEACTOR__") || name.starts_with("OTEL_") {
            cmd.env_remove(&*name);
        }
    }
    // Make a panic impossible to miss: it would print "panicked" and a backtrace.
    cmd.env("RUST_BACKTRACE", "1");
    cmd.envs(env.iter().copied());
    cmd.output().expect("run the kubeactor binary")
}

fn config_file(contents: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(contents.as_bytes()).expect("write temp file");
    f
}

/// Asserts a clean configuration failure and returns its one line.
fn assert_config_error(out: &Output, must_contain: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "exit status; stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("config error: "), "{stderr}");
    for fragment in must_contain {
        assert!(
            stderr.contains(fragment),
            "missing {fragment:?} in: {stderr}"
        );
    }
    assert!(out.stdout.is_empty(), "nothing on stdout");
    stderr
}

fn path(f: &tempfile::NamedTempFile) -> String {
    Path::new(f.path()).display().to_string()
}

#[test]
fn unknown_key_in_config_file() {
    let f = config_file("[store]\nengin = \"redb\"\n");
    let out = kubeactor(&["up", "--config", &path(&f)], &[]);
    assert_config_error(&out, &["unknown key \"store.engin\"", &path(&f)]);
}

#[test]
fn wrong_type_in_config_file() {
    let f = config_file("[store]\nmax_batch = \"abc\"\n");
    let out = kubeactor(&["up", "--config", &path(&f)], &[]);
    assert_config_error(&out, &["store.max_batch", "invalid type", &path(&f)]);
}

#[test]
fn invalid_value_in_config_file() {
    let f = config_file("[telemetry]\nsampler_ratio = 1.5\n");
    let out = kubeactor(&["--config", &path(&f), "up"], &[]);
    assert_config_error(
        &out,
        &["telemetry.sampler_ratio", "between 0 and 1", &path(&f)],
    );
}

#[test]
fn invalid_toml_in_config_file() {
    let f = config_file("[store\n");
    let out = kubeactor(&["up", "--config", &path(&f)], &[]);
    assert_config_error(&out, &["invalid TOML", &path(&f)]);
}

#[test]
fn missing_config_file() {
    let out = kubeactor(&["up", "--config", "/nonexistent/kubeactor.toml"], &[]);
    assert_config_error(&out, &["cannot read /nonexistent/kubeactor.toml"]);
}

#[test]
fn wrong_type_in_environment_variable() {
    let out = kubeactor(&["up"], &[("KUBEACTOR__STORE__MAX_BATCH", "abc")]);
    assert_config_error(
        &out,
        &[
            "store.max_batch",
            "invalid type",
            "environment variable KUBEACTOR__STORE__MAX_BATCH",
        ],
    );
}

#[test]
fn unknown_key_in_environment_variable() {
    let out = kubeactor(&["up"], &[("KUBEACTOR__STORE__ENGIN", "redb")]);
    assert_config_error(
        &out,
        &[
            "unknown key \"store.engin\"",
            "environment variable KUBEACTOR__STORE__ENGIN",
        ],
    );
}

#[test]
fn invalid_value_in_set_flag() {
    let out = kubeactor(&["up", "--set", "store.max_batch=0"], &[]);
    assert_config_error(
        &out,
        &[
            "store.max_batch",
            "greater than 0",
            "command-line flag --set store.max_batch=0",
        ],
    );
}

#[test]
fn unknown_key_in_set_flag() {
    let out = kubeactor(&["up", "--set", "store.engin=redb"], &[]);
    assert_config_error(
        &out,
        &["unknown key \"store.engin\"", "--set store.engin=redb"],
    );
}

#[test]
fn malformed_set_flag() {
    let out = kubeactor(&["up", "--set", "store.max_batch"], &[]);
    assert_config_error(&out, &["--set", "store.max_batch", "section.key=value"]);
}

#[test]
fn unknown_store_engine_flag() {
    let out = kubeactor(&["up", "--store-engine", "rocksdb"], &[]);
    assert_config_error(
        &out,
        &[
            "store.engine",
            "rocksdb",
            "redb",
            "memory",
            "--store-engine",
        ],
    );
}

#[test]
fn flag_beats_bad_environment_value() {
    // The environment sets an invalid value; the flag above it replaces the value, and the
    // flag's own bad value is what gets reported — proof of the precedence order.
    let out = kubeactor(
        &["up", "--set", "telemetry.sampler_ratio=2"],
        &[("KUBEACTOR__TELEMETRY__SAMPLER_RATIO", "abc")],
    );
    assert_config_error(
        &out,
        &["telemetry.sampler_ratio", "--set telemetry.sampler_ratio=2"],
    );
}
