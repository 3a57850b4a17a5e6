//! Runs `nft` (optionally inside a network namespace via `nsenter`, which is
//! how the integration tests drive a throwaway namespace), behind the narrow
//! [`NftExecutor`] seam the proxier talks to (youki's `Syscall` shape), so a
//! unit test can drive a whole sync against a fake.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::process::{Output, Stdio};

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::names::TABLE;

/// Why running `nft` failed. Every variant is retriable: the proxier answers
/// any failure with a full resync on its next run.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("spawning nft: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("writing nft script: {0}")]
    WriteScript(#[source] std::io::Error),
    #[error("waiting for nft: {0}")]
    Wait(#[source] std::io::Error),
    /// nft ran and rejected the command; `stderr` says why.
    #[error("{stderr}")]
    Failed {
        /// The exit code; `None` when nft was killed by a signal.
        code: Option<i32>,
        stderr: String,
    },
}

impl NftError {
    /// Every nft failure is worth retrying with a full sync.
    pub fn is_retriable(&self) -> bool {
        true
    }

    /// nft's answer when our table (or the family) does not exist yet.
    fn is_missing_table(&self) -> bool {
        matches!(self, NftError::Failed { stderr, .. } if stderr.contains("No such file or directory"))
    }

    fn from_output(out: &Output) -> Self {
        NftError::Failed {
            code: out.status.code(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        }
    }
}

/// What of our table [`NftExecutor::list`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    Chains,
    Sets,
}

impl Listing {
    /// The `nft list` object word.
    fn plural(self) -> &'static str {
        match self {
            Listing::Chains => "chains",
            Listing::Sets => "sets",
        }
    }
}

/// The proxier's only access to nftables: apply one atomic script, and list
/// what our table holds. [`NftCli`] is the real one.
pub trait NftExecutor: Send {
    /// Applies `script` as one atomic transaction.
    fn apply(&mut self, script: &str) -> impl Future<Output = Result<(), NftError>> + Send;

    /// Names of the chains or sets in our table; empty when the table does
    /// not exist yet.
    fn list(
        &mut self,
        what: Listing,
    ) -> impl Future<Output = Result<BTreeSet<String>, NftError>> + Send;
}

#[derive(Debug, Clone)]
pub struct NftCli {
    family: &'static str,
    netns: Option<PathBuf>,
}

impl NftCli {
    pub fn new(family: &'static str) -> Self {
        Self {
            family,
            netns: None,
        }
    }

    /// Runs every command inside the network namespace at `path`
    /// (e.g. `/var/run/netns/NAME`).
    pub fn in_netns(mut self, path: impl Into<PathBuf>) -> Self {
        self.netns = Some(path.into());
        self
    }

    fn command(&self) -> Command {
        match &self.netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", ns.display())).arg("nft");
                c
            }
            None => Command::new("nft"),
        }
    }

    /// Applies `script` as one atomic transaction (`nft -f -`).
    pub async fn run(&self, script: &str) -> Result<(), NftError> {
        let mut child = self
            .command()
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(NftError::Spawn)?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(script.as_bytes())
                .await
                .map_err(NftError::WriteScript)?;
        }
        let out = child.wait_with_output().await.map_err(NftError::Wait)?;
        if out.status.success() {
            Ok(())
        } else {
            Err(NftError::from_output(&out))
        }
    }

    /// `nft list table`, the full text (for tests and debugging).
    pub async fn list_table(&self) -> Result<String, NftError> {
        self.output(&["list", "table", self.family, TABLE]).await
    }

    /// Names of the chains (`what == "chains"`) or sets in our table; empty
    /// when the table does not exist yet.
    pub async fn list(&self, what: &str) -> Result<BTreeSet<String>, NftError> {
        match self.output(&["list", what, self.family]).await {
            Ok(text) => Ok(parse_names(&text, what.trim_end_matches('s'))),
            Err(e) if e.is_missing_table() => Ok(BTreeSet::new()),
            Err(e) => Err(e),
        }
    }

    async fn output(&self, args: &[&str]) -> Result<String, NftError> {
        let out = self
            .command()
            .args(args)
            .output()
            .await
            .map_err(NftError::Spawn)?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(NftError::from_output(&out))
        }
    }
}

impl NftExecutor for NftCli {
    async fn apply(&mut self, script: &str) -> Result<(), NftError> {
        self.run(script).await
    }

    async fn list(&mut self, what: Listing) -> Result<BTreeSet<String>, NftError> {
        NftCli::list(self, what.plural()).await
    }
}

/// Extracts `NAME` from `chain NAME {` / `set NAME {` lines that belong to
/// our table in `nft list chains|sets <family>` output.
pub fn parse_names(text: &str, keyword: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut in_our_table = false;
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("table ") {
            in_our_table = rest.split_whitespace().nth(1) == Some(TABLE);
            continue;
        }
        if !in_our_table {
            continue;
        }
        if let Some(rest) = line.strip_prefix(keyword).and_then(|r| r.strip_prefix(' '))
            && let Some(name) = rest.split_whitespace().next()
        {
            names.insert(name.to_string());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_chain_listing() {
        let text = "table ip filter {\n\tchain INPUT {\n\t}\n}\ntable ip kube-proxy {\n\tchain services {\n\t}\n\tchain service-AB-ns/svc/tcp/p80 {\n\t}\n}\n";
        let names = parse_names(text, "chain");
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            vec!["service-AB-ns/svc/tcp/p80", "services"]
        );
    }
}
