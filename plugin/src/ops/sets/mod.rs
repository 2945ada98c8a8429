//! The operations on StatefulSets and DaemonSets, with the guarantees Deployments get: the
//! safe update (pre-flight, resourceVersion precondition, fresh change-cause, the pod-level
//! judge, automatic rollback), `undo` from their ControllerRevisions, and, for StatefulSets, a
//! canary by partition. After a StatefulSet's template is put back, the pods stuck on the broken
//! revision are deleted (`recover`), which its controller never does by itself.

pub mod canary;
pub mod recover;
pub mod undo;
pub mod update;
