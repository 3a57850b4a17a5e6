//! The skip-or-fail policy every integration test relies on: a missing
//! prerequisite fails the test, `FK_ALLOW_SKIP=1` turns that into a printed
//! `SKIP` and a pass. Checked both as functions and end to end, in a child
//! copy of this test binary with the real environment variable and the real
//! `hack/kube-bin/path` failing on a binary nobody can provide.
// Test helpers outside #[test] fns may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use test_support::prereq::{ALLOW_SKIP_ENV, or_skip, skip_verdict, stock_bin, workspace_root};

/// A name `hack/kube-bin/path` cannot fetch or build, so it fails fast.
const UNOBTAINABLE: &str = "fk-test-no-such-binary";
/// Set for the child run only, so the child test is inert on its own.
const CHILD_ENV: &str = "FK_PREREQ_TEST_CHILD";

#[test]
fn without_opt_out_a_missing_prerequisite_is_an_error_naming_it() {
    let err = skip_verdict(false, "no frobnicator (apt-get install frob)")
        .expect_err("must fail without the opt-out");
    assert!(
        err.contains("no frobnicator (apt-get install frob)"),
        "{err}"
    );
    assert!(err.contains("FK_ALLOW_SKIP=1"), "{err}");
}

#[test]
fn with_opt_out_a_missing_prerequisite_skips() {
    assert_eq!(
        skip_verdict(true, "no frobnicator"),
        Ok("SKIP: no frobnicator".to_string())
    );
}

#[test]
fn the_workspace_root_holds_the_resolver() {
    let root = workspace_root().expect("workspace root");
    assert!(
        root.join("hack/kube-bin/path").is_file(),
        "{}",
        root.display()
    );
    assert!(root.join("Cargo.lock").is_file(), "{}", root.display());
}

/// Run only by [`run_child`]: what a real test does with an unobtainable
/// stock binary.
#[test]
#[ignore = "run in a child process by the tests below"]
fn child_needs_an_unobtainable_binary() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let Some(path) = or_skip(stock_bin(UNOBTAINABLE)) else {
        println!("CHILD RETURNED EARLY");
        return;
    };
    panic!("{UNOBTAINABLE} resolved to {}", path.display());
}

fn run_child(allow_skip: Option<&str>) -> Output {
    let exe = std::env::current_exe().expect("path of this test binary");
    let mut cmd = Command::new(exe);
    cmd.args([
        "--exact",
        "child_needs_an_unobtainable_binary",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, "1")
    .env_remove(ALLOW_SKIP_ENV)
    // The script must not find the name in a user's own directory.
    .env_remove("KUBE_BIN_DIR");
    if let Some(value) = allow_skip {
        cmd.env(ALLOW_SKIP_ENV, value);
    }
    cmd.output().expect("run the child test")
}

fn text(out: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn an_unavailable_stock_binary_fails_the_test() {
    for allow_skip in [None, Some("0"), Some("")] {
        let out = run_child(allow_skip);
        let all = text(&out);
        assert!(
            !out.status.success(),
            "FK_ALLOW_SKIP={allow_skip:?}:\n{all}"
        );
        assert!(
            all.contains(&format!("stock {UNOBTAINABLE} is not available")),
            "{all}"
        );
        assert!(all.contains("set FK_ALLOW_SKIP=1 to skip instead"), "{all}");
        assert!(!all.contains("CHILD RETURNED EARLY"), "{all}");
    }
}

#[test]
fn fk_allow_skip_turns_the_failure_into_a_skip() {
    let out = run_child(Some("1"));
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(
        all.contains(&format!("SKIP: stock {UNOBTAINABLE} is not available")),
        "{all}"
    );
    assert!(all.contains("CHILD RETURNED EARLY"), "{all}");
}
