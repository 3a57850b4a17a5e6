//! Reads a container's CRI log file (upstream `ReadLogs`): tail, since,
//! limit, and `follow` until the container stops, reopening the file when
//! the runtime rotates it.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use tokio::fs::File;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncSeekExt, BufReader};
use tokio::sync::mpsc;

use super::cri_log::{LogWriter, Written, parse_cri_line, tail_start};
use super::options::LogOptions;

/// How often a followed file is checked for new data or rotation.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How often a followed container's state is checked (upstream `stateCheckPeriod`).
const STATE_CHECK_PERIOD: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("failed to try resolving symlinks in path {path:?}: {source}")]
    Resolve {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to open log file {path:?}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to read log file {path:?}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// An opened log file, positioned where output starts.
#[derive(Debug)]
pub struct OpenedLog {
    path: PathBuf,
    file: File,
}

/// Resolves symlinks, opens `path` and seeks to the first of the last `tailLines` lines.
pub async fn open_log(path: &Path, opts: &LogOptions) -> Result<OpenedLog, LogError> {
    let path = tokio::fs::canonicalize(path)
        .await
        .map_err(|source| LogError::Resolve {
            path: path.to_path_buf(),
            source,
        })?;
    let open_err = |source| LogError::Open {
        path: path.clone(),
        source,
    };
    let mut file = File::open(&path).await.map_err(open_err)?;
    let start = match opts.tail_lines {
        None => 0,
        Some(n) => {
            // Tail needs the whole file; CRI logs are rotated at ~10 MiB.
            let mut data = Vec::new();
            file.read_to_end(&mut data)
                .await
                .map_err(|source| LogError::Read {
                    path: path.clone(),
                    source,
                })?;
            tail_start(&data, Some(n)) as u64
        }
    };
    file.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(|source| LogError::Read {
            path: path.clone(),
            source,
        })?;
    Ok(OpenedLog { path, file })
}

#[cfg(unix)]
fn inode(meta: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(meta)
}

/// Streams the formatted log into `out` until done, the limit is hit, the
/// client goes away (`out` closed) or — with `follow` — `running` says the
/// container stopped and the file is drained.
pub async fn stream_log<R, F>(
    opened: OpenedLog,
    opts: LogOptions,
    writer: LogWriter,
    running: R,
    out: mpsc::Sender<Bytes>,
) -> Result<(), LogError>
where
    R: Fn() -> F,
    F: Future<Output = bool>,
{
    let OpenedLog { path, file } = opened;
    let read_err = |source| LogError::Read {
        path: path.clone(),
        source,
    };
    let mut current_inode = file.metadata().await.map(|m| inode(&m)).map_err(read_err)?;
    let mut reader = BufReader::new(file);
    let mut writer = writer;
    let mut remaining_lines = opts.tail_lines.filter(|_| !opts.follow);
    let mut carry: Vec<u8> = Vec::new();
    let mut container_running = true;
    // The first EOF checks at once, so following a stopped container ends promptly.
    let mut last_state_check: Option<tokio::time::Instant> = None;
    loop {
        if remaining_lines == Some(0) {
            return Ok(());
        }
        let n = reader
            .read_until(b'\n', &mut carry)
            .await
            .map_err(read_err)?;
        let complete = carry.last() == Some(&b'\n');
        if !complete {
            // EOF (possibly inside a line).
            if !opts.follow || !container_running {
                if carry.is_empty() {
                    return Ok(());
                }
                // The last, unterminated line: write it and stop.
            } else {
                if out.is_closed() {
                    return Ok(());
                }
                tokio::time::sleep(POLL_INTERVAL).await;
                if let Ok(meta) = tokio::fs::metadata(&path).await
                    && inode(&meta) != current_inode
                {
                    // Rotated: the runtime renamed the file and created a new one.
                    let file = File::open(&path).await.map_err(read_err)?;
                    current_inode = inode(&meta);
                    reader = BufReader::new(file);
                    carry.clear();
                    continue;
                }
                let due = last_state_check.is_none_or(|t| t.elapsed() >= STATE_CHECK_PERIOD);
                if n == 0 && due {
                    last_state_check = Some(tokio::time::Instant::now());
                    // After a stop, drain what is left once more, then end.
                    container_running = running().await;
                }
                continue;
            }
        }
        let line = std::mem::take(&mut carry);
        let msg = match parse_cri_line(&line) {
            Ok(msg) => msg,
            Err(err) => {
                tracing::error!(path = %path.display(), %err, "Failed when parsing line in log file");
                if !complete {
                    return Ok(());
                }
                continue;
            }
        };
        let mut chunk = Vec::new();
        let written = writer.write(&msg, &mut chunk);
        if !chunk.is_empty() && out.send(Bytes::from(chunk)).await.is_err() {
            return Ok(());
        }
        if written == Written::LimitReached || !complete {
            return Ok(());
        }
        if let Some(n) = remaining_lines.as_mut() {
            *n -= 1;
        }
    }
}
