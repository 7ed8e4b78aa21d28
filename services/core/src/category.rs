//! The log categories that share an Event Hub, and which of them are in scope.

use std::fmt;

/// A diagnostic-setting category as Azure names it in `category`.
///
/// The scope of the rule is a property of the category, so it is decided here once: user
/// sign-ins are always classified, workload identities only on request (they cannot do MFA),
/// and everything else that shares the hub is skipped and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    /// Interactive user sign-ins: a person typed or tapped something.
    SignInLogs,
    /// Sign-ins a client made for a user without asking them (token refresh, SSO).
    NonInteractiveUserSignInLogs,
    /// Sign-ins through AD FS, sent by Connect Health (`ADFSSignInLogs`).
    AdfsSignInLogs,
    /// Applications signing in as themselves: a workload identity, no MFA possible.
    ServicePrincipalSignInLogs,
    /// Azure resources signing in with a managed identity: a workload identity.
    ManagedIdentitySignInLogs,
    /// Microsoft's own first-party service principals: a workload identity.
    MicrosoftServicePrincipalSignInLogs,
}

impl Category {
    /// Every sign-in category, in the order summaries list them.
    pub const ALL: [Category; 6] = [
        Category::SignInLogs,
        Category::NonInteractiveUserSignInLogs,
        Category::AdfsSignInLogs,
        Category::ServicePrincipalSignInLogs,
        Category::ManagedIdentitySignInLogs,
        Category::MicrosoftServicePrincipalSignInLogs,
    ];

    /// Recognises a sign-in category; `None` for every other category (AuditLogs, …).
    /// Azure's spelling is matched without regard to letter case.
    pub fn parse(name: &str) -> Option<Category> {
        Category::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(name))
    }

    /// The name exactly as Azure writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::SignInLogs => "SignInLogs",
            Category::NonInteractiveUserSignInLogs => "NonInteractiveUserSignInLogs",
            Category::AdfsSignInLogs => "ADFSSignInLogs",
            Category::ServicePrincipalSignInLogs => "ServicePrincipalSignInLogs",
            Category::ManagedIdentitySignInLogs => "ManagedIdentitySignInLogs",
            Category::MicrosoftServicePrincipalSignInLogs => "MicrosoftServicePrincipalSignInLogs",
        }
    }

    /// Workload identities have no MFA at all, so they are noise unless asked for.
    pub fn is_workload(self) -> bool {
        matches!(
            self,
            Category::ServicePrincipalSignInLogs
                | Category::ManagedIdentitySignInLogs
                | Category::MicrosoftServicePrincipalSignInLogs
        )
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_ignore_case() {
        for c in Category::ALL {
            assert_eq!(Category::parse(c.as_str()), Some(c));
            assert_eq!(Category::parse(&c.as_str().to_lowercase()), Some(c));
        }
        assert_eq!(Category::parse("AuditLogs"), None);
        assert_eq!(Category::parse(""), None);
    }

    #[test]
    fn only_the_three_service_categories_are_workloads() {
        let workloads: Vec<_> = Category::ALL
            .into_iter()
            .filter(|c| c.is_workload())
            .collect();
        assert_eq!(workloads.len(), 3);
        assert!(!Category::AdfsSignInLogs.is_workload());
    }
}
