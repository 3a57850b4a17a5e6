//! Container lifecycle hooks (upstream `pkg/kubelet/lifecycle`). The runtime manager runs
//! `postStart` right after a container starts (a failure kills it: `FailedPostStartHook`)
//! and `preStop` before stopping one, inside its grace period (`FailedPreStopHook`).

mod handlers;

pub use handlers::{
    CommandError, CommandOutput, CommandRunner, HookError, HookTarget, LIFECYCLE_HTTP_FALLBACK,
    http_request, resolve_port, run, user_agent,
};
