//! Runs `nft` (optionally inside a network namespace via `nsenter`, which is
//! how the integration tests drive a throwaway namespace).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::names::TABLE;
use crate::Error;

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
    pub async fn run(&self, script: &str) -> Result<(), Error> {
        let mut child = self
            .command()
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::Nft(format!("spawning nft: {e}")))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(script.as_bytes())
                .await
                .map_err(|e| Error::Nft(format!("writing nft script: {e}")))?;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| Error::Nft(format!("waiting for nft: {e}")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(Error::Nft(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ))
        }
    }

    /// `nft list table`, the full text (for tests and debugging).
    pub async fn list_table(&self) -> Result<String, Error> {
        self.output(&["list", "table", self.family, TABLE]).await
    }

    /// Names of the chains (`what == "chains"`) or sets in our table; empty
    /// when the table does not exist yet.
    pub async fn list(&self, what: &str) -> Result<BTreeSet<String>, Error> {
        match self.output(&["list", what, self.family]).await {
            Ok(text) => Ok(parse_names(&text, what.trim_end_matches('s'))),
            Err(Error::Nft(msg)) if msg.contains("No such file or directory") => {
                Ok(BTreeSet::new())
            }
            Err(e) => Err(e),
        }
    }

    async fn output(&self, args: &[&str]) -> Result<String, Error> {
        let out = self
            .command()
            .args(args)
            .output()
            .await
            .map_err(|e| Error::Nft(format!("spawning nft: {e}")))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(Error::Nft(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ))
        }
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
