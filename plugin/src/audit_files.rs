//! The offline audit's pipeline: files are read, parsed and checked in parallel, one file per
//! task, and collected in input order, so the report is the same whatever the thread count.
//! Only what the cross-object rules and the report need outlives a file (see
//! `rollout_safe_policy::settle`): documents are dropped as soon as they are checked.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use rollout_safe_policy::audit::{FileAudit, audit_text};
use rollout_safe_policy::{AuditCollector, AuditResult, DocumentError, RolloutPolicy};

use crate::input::{FileList, read_text, source_name};

/// Worker threads' stacks: as large as the main thread's, since parsing recurses with the
/// document's nesting.
const WORKER_STACK_BYTES: usize = 8 << 20;

/// The number of threads to use when none is asked for: one per core.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Reads, parses and checks one file.
pub fn check_file(policy: &RolloutPolicy, path: &Path) -> FileAudit {
    let name = source_name(path);
    match read_text(path) {
        Ok(text) => audit_text(policy, &name, &text),
        Err(message) => {
            let mut audit = FileAudit::default();
            audit.read_error(DocumentError {
                file: name,
                line: 0,
                column: None,
                message,
            });
            audit
        }
    }
}

/// Audits the files of `list` on `jobs` threads.
pub fn audit_files(policy: &RolloutPolicy, list: FileList, jobs: usize) -> AuditResult {
    let mut collector = AuditCollector::new(policy);
    for e in list.errors {
        collector.read_error(e);
    }
    for n in list.notices {
        collector.notice(n);
    }
    let files = list.files;
    let jobs = jobs.clamp(1, files.len().max(1));
    if jobs == 1 {
        for (i, path) in files.iter().enumerate() {
            collector.add(i, check_file(policy, path));
        }
        return collector.finish();
    }
    let next = AtomicUsize::new(0);
    // Bounded, so checked files wait for the collector rather than pile up.
    let (tx, rx) = mpsc::sync_channel::<(usize, FileAudit)>(jobs * 4);
    std::thread::scope(|scope| {
        for n in 0..jobs {
            let tx = tx.clone();
            let (next, files) = (&next, &files);
            let spawned = std::thread::Builder::new()
                .name(format!("audit-{n}"))
                .stack_size(WORKER_STACK_BYTES)
                .spawn_scoped(scope, move || {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(path) = files.get(i) else { break };
                        if tx.send((i, check_file(policy, path))).is_err() {
                            break;
                        }
                    }
                });
            // Without a thread of its own, the work is left to the others (or done below).
            if spawned.is_err() {
                break;
            }
        }
        drop(tx);
        for (i, audit) in rx {
            collector.add(i, audit);
        }
    });
    // Files no thread took (none could be started): checked here.
    let first_left = next.load(Ordering::Relaxed);
    for (i, file) in files.iter().enumerate().skip(first_left) {
        collector.add(i, check_file(policy, file));
    }
    collector.finish()
}
