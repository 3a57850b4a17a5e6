//! SIGTERM/SIGINT handling like upstream's `SetupSignalContext`: the first
//! signal cancels the returned token (graceful shutdown), a second one exits
//! immediately with code 1.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Spawns the signal watcher; must be called inside a Tokio runtime.
pub fn shutdown_token() -> std::io::Result<CancellationToken> {
    let token = CancellationToken::new();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let cancel = token.clone();
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "Received shutdown signal, shutting down");
        cancel.cancel();
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        tracing::warn!("Received a second signal, exiting immediately");
        std::process::exit(1);
    });
    Ok(token)
}
