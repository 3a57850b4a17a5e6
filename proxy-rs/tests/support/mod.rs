//! Throwaway network namespaces for the real-nftables tests. Everything is
//! removed on drop, even when a test fails.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

// The real-apiserver helper and the workspace-wide
// lookup of binaries and skip-or-fail policy, from test-support.
#[allow(unused_imports)]
pub use test_support::apiserver;
pub use test_support::prereq;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Returns why the tests cannot run here, if they cannot.
pub fn skip_reason() -> Option<String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some("not running as root".into());
    }
    let missing: Vec<&str> = ["ip", "nft", "nsenter", "socat"]
        .into_iter()
        .filter(|tool| prereq::on_path(tool).is_none())
        .collect();
    if !missing.is_empty() {
        return Some(format!("{} not installed", missing.join(", ")));
    }
    None
}

/// True when the real-nftables tests can run here. Otherwise the test fails
/// naming what is missing, or, under `FK_ALLOW_SKIP=1`, `SKIP: ...` is
/// printed and this is false.
pub fn netns_tests_can_run() -> bool {
    let Some(why) = skip_reason() else {
        return true;
    };
    prereq::skip_or_fail(&format!(
        "the real-nftables tests need root, ip, nft, nsenter and socat: {why} \
         (run as root; Debian: apt-get install iproute2 nftables util-linux socat)"
    ));
    false
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(role: &str) -> Self {
        let name = format!(
            "ferrokube-proxytest-{}-{}-{role}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        run(Command::new("ip").args(["netns", "add", &name]));
        let ns = Self { name };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    pub fn path(&self) -> String {
        format!("/var/run/netns/{}", self.name)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.path())).args(args);
        c
    }

    pub fn exec(&self, args: &[&str]) -> String {
        run(&mut self.command(args))
    }

    /// Runs a command and returns (success, stdout+stderr).
    pub fn try_exec(&self, args: &[&str]) -> (bool, String) {
        match self.command(args).output() {
            Ok(out) => (
                out.status.success(),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            ),
            Err(e) => (false, e.to_string()),
        }
    }

    pub fn spawn(&self, args: &[&str]) -> ChildGuard {
        let child = self
            .command(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {args:?}: {e}"));
        ChildGuard(child)
    }

    pub fn sysctl(&self, key: &str, value: &str) {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        self.exec(&["sh", "-c", &format!("echo {value} > {path}")]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Kills the child (a server inside a namespace) on drop.
pub struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A "node" namespace and a "client" namespace joined by a veth pair:
/// node 10.99.0.1/24 (veth `n0`), client 10.99.0.2/24 (veth `c0`), the
/// client's default route via the node.
pub struct Topology {
    pub node: Netns,
    pub client: Netns,
}

pub const NODE_IP: &str = "10.99.0.1";

impl Topology {
    pub fn new() -> Self {
        let node = Netns::new("node");
        let client = Netns::new("client");
        // Create the pair inside the node namespace, then move one end.
        node.exec(&[
            "ip", "link", "add", "n0", "type", "veth", "peer", "name", "c0",
        ]);
        node.exec(&["ip", "link", "set", "c0", "netns", &client.name]);
        node.exec(&["ip", "addr", "add", "10.99.0.1/24", "dev", "n0"]);
        node.exec(&["ip", "link", "set", "n0", "up"]);
        client.exec(&["ip", "addr", "add", "10.99.0.2/24", "dev", "c0"]);
        client.exec(&["ip", "link", "set", "c0", "up"]);
        client.exec(&["ip", "route", "add", "default", "via", "10.99.0.1"]);
        node.sysctl("net.ipv4.ip_forward", "1");
        // Forwarding back out of n0 would send ICMP redirects, and their
        // per-destination rate limit then swallows the reject's ICMP error.
        node.sysctl("net.ipv4.conf.all.send_redirects", "0");
        node.sysctl("net.ipv4.conf.n0.send_redirects", "0");
        // Lets the node route (and so filter-forward see) traffic to
        // unallocated service IPs; nothing ever leaves toward the client.
        for range in ["172.30.0.0/16", "10.96.0.0/16"] {
            node.exec(&["ip", "route", "add", range, "via", "10.99.0.2"]);
        }
        Self { node, client }
    }

    /// Adds a backend address on the node's loopback and serves `reply` on it.
    pub fn backend(&self, ip: &str, port: u16, reply: &str) -> ChildGuard {
        self.node
            .exec(&["ip", "addr", "add", &format!("{ip}/32"), "dev", "lo"]);
        let guard = self.node.spawn(&[
            "socat",
            &format!("TCP-LISTEN:{port},bind={ip},fork,reuseaddr"),
            &format!("SYSTEM:echo {reply}"),
        ]);
        // Wait until it listens.
        for _ in 0..50 {
            let (ok, out) = self.node.try_exec(&["ss", "-ltnH"]);
            if ok && out.contains(&format!("{ip}:{port}")) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        guard
    }

    /// Connects from the client namespace; returns the server's reply or the error.
    pub fn connect(&self, ip: &str, port: u16) -> Result<String, String> {
        let (ok, out) = self.client.try_exec(&[
            "socat",
            "-T2",
            "-",
            &format!("TCP:{ip}:{port},connect-timeout=1"),
        ]);
        if ok {
            Ok(out.trim().to_string())
        } else {
            Err(out)
        }
    }
}
