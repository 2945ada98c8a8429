//! Faults a test injects into the stand-in: answers a real cluster gives under RBAC limits or
//! concurrent writers. (Controllers that are slow or stuck are options of the stand-in itself:
//! [`crate::StandinBuilder::reaction_delay`], [`crate::Standin::set_stuck`].)

use crate::Verb;

/// The annotation the simulated other writer sets.
pub const OTHER_WRITER_ANNOTATION: &str = "example.com/other-writer";

/// What goes wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Requests with this verb on this resource (plural) are answered with the recorded 403
    /// Forbidden (09), reworded for the request.
    Forbidden { verb: Verb, resource: String },
    /// Before a PATCH or PUT of this resource (whose body contains `body_contains`, if given)
    /// is applied, another writer changes the object first: it sets the annotation
    /// [`OTHER_WRITER_ANNOTATION`] to `touch N` (N counts these writes from 0), so the
    /// client's resourceVersion precondition is stale.
    ConcurrentWrite {
        resource: String,
        body_contains: Option<String>,
        answer: StaleAnswer,
    },
}

/// How the stale write is answered after a [`Fault::ConcurrentWrite`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaleAnswer {
    /// As the real server does: the write is evaluated against the changed object (a JSON
    /// Patch `test` op then fails with the recorded 422 (05), a merge patch carrying the old
    /// `metadata.resourceVersion` gets the recorded 409 (04)).
    Evaluate,
    /// The recorded 409 Conflict (04) at once, whatever the write was.
    Conflict,
}

/// How often a fault strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Times {
    Always,
    /// The next `n` matching requests.
    Next(usize),
}

#[derive(Debug, Default)]
pub(crate) struct Faults {
    injected: Vec<(Fault, Times)>,
    other_writes: usize,
}

impl Faults {
    pub fn inject(&mut self, fault: Fault, times: Times) {
        if times != Times::Next(0) {
            self.injected.push((fault, times));
        }
    }

    /// Takes one strike of the first fault `matches` accepts.
    fn strike(&mut self, matches: impl Fn(&Fault) -> bool) -> Option<Fault> {
        let i = self.injected.iter().position(|(f, _)| matches(f))?;
        let fault = self.injected[i].0.clone();
        if let Times::Next(n) = &mut self.injected[i].1 {
            *n -= 1;
            if *n == 0 {
                self.injected.remove(i);
            }
        }
        Some(fault)
    }

    pub fn forbidden(&mut self, verb: Verb, resource: &str) -> bool {
        self.strike(|f| matches!(f, Fault::Forbidden { verb: v, resource: r } if *v == verb && r == resource))
            .is_some()
    }

    /// For a write about to be applied: the other writer's annotation value and how to answer.
    pub fn concurrent_write(
        &mut self,
        resource: &str,
        body: &str,
    ) -> Option<(String, StaleAnswer)> {
        let fault = self.strike(|f| {
            matches!(f, Fault::ConcurrentWrite { resource: r, body_contains, .. }
                if r == resource && body_contains.as_deref().is_none_or(|b| body.contains(b)))
        })?;
        let Fault::ConcurrentWrite { answer, .. } = fault else {
            return None;
        };
        let touch = format!("touch {}", self.other_writes);
        self.other_writes += 1;
        Some((touch, answer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_strike_as_often_as_asked() {
        let mut f = Faults::default();
        f.inject(
            Fault::Forbidden {
                verb: Verb::Get,
                resource: "deployments".into(),
            },
            Times::Always,
        );
        f.inject(
            Fault::ConcurrentWrite {
                resource: "services".into(),
                body_contains: Some("selector".into()),
                answer: StaleAnswer::Conflict,
            },
            Times::Next(1),
        );
        assert!(f.forbidden(Verb::Get, "deployments"));
        assert!(f.forbidden(Verb::Get, "deployments"));
        assert!(!f.forbidden(Verb::List, "deployments"));
        assert_eq!(f.concurrent_write("services", "{\"metadata\":{}}"), None);
        assert_eq!(
            f.concurrent_write("services", "{\"spec\":{\"selector\":{}}}"),
            Some(("touch 0".into(), StaleAnswer::Conflict))
        );
        assert_eq!(
            f.concurrent_write("services", "{\"spec\":{\"selector\":{}}}"),
            None
        );
    }
}
