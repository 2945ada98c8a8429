//! What the mutations know about the API server they are for.

/// What the mutator knows about the API server it mutates for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerInfo {
    /// The API server's Kubernetes version as (major, minor); `None` when it could not be
    /// learnt. An unknown version gets no field an older server would reject.
    pub version: Option<(u32, u32)>,
}

impl Default for ServerInfo {
    /// A current Kubernetes: what offline tools assume when nobody names a version.
    fn default() -> Self {
        ServerInfo {
            version: Some((1, ServerInfo::ASSUMED_CURRENT_MINOR)),
        }
    }
}

impl ServerInfo {
    /// The version could not be learnt.
    pub const UNKNOWN: ServerInfo = ServerInfo { version: None };
    /// The minor version [`ServerInfo::default`] stands for: newer than any real one.
    pub const ASSUMED_CURRENT_MINOR: u32 = 0xffff;

    /// From a server version such as `v1.29.3`, `1.30` or `v1.31.2-eks-1`; anything else is
    /// [`ServerInfo::UNKNOWN`].
    pub fn from_version(version: &str) -> Self {
        let v = version.trim().trim_start_matches('v');
        let mut parts = v.split('.');
        let number = |s: Option<&str>| -> Option<u32> {
            let s = s?;
            let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
            s[..end].parse().ok()
        };
        ServerInfo {
            version: number(parts.next()).zip(number(parts.next())),
        }
    }

    /// Whether `lifecycle.preStop.sleep` exists (Kubernetes >= 1.30); `None` when unknown.
    pub fn native_sleep(&self) -> Option<bool> {
        self.version.map(|(major, minor)| major > 1 || minor >= 30)
    }

    /// `1.30`, or `unknown`.
    pub fn version_text(&self) -> String {
        match self.version {
            Some((major, Self::ASSUMED_CURRENT_MINOR)) => format!("{major}.x (assumed current)"),
            Some((major, minor)) => format!("{major}.{minor}"),
            None => "unknown".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(
            ServerInfo::from_version("v1.30.0").native_sleep(),
            Some(true)
        );
        assert_eq!(ServerInfo::from_version("1.31+").native_sleep(), Some(true));
        assert_eq!(
            ServerInfo::from_version("v1.29.3-eks-1").version,
            Some((1, 29))
        );
        assert_eq!(
            ServerInfo::from_version("v1.29.3-eks-1").native_sleep(),
            Some(false)
        );
        assert_eq!(ServerInfo::from_version("1.24").native_sleep(), Some(false));
        // An unreadable version is unknown, not assumed current.
        assert_eq!(ServerInfo::from_version("garbage"), ServerInfo::UNKNOWN);
        assert_eq!(ServerInfo::UNKNOWN.native_sleep(), None);
        assert_eq!(ServerInfo::default().native_sleep(), Some(true));
    }
}
