//! The shapes a sign-in arrives in, told apart by their top-level keys, and the two that are
//! not Azure Monitor's own envelope turned into its record.
//!
//! - **diagnostic**: what a diagnostic setting sends (`category`, `time`, `resultType`,
//!   `properties{…}`), in camelCase;
//! - **graph**: a Microsoft Graph `signIn` resource (v1.0 or beta): the `properties` of a
//!   diagnostic record at the top level, with no `category`, `time` or `resultType`;
//! - **log_analytics**: a row of a Log Analytics table (`SigninLogs`,
//!   `AADNonInteractiveUserSignInLogs`, `ADFSSignInLogs`, `AADServicePrincipalSignInLogs`,
//!   `AADManagedIdentitySignInLogs`), PascalCase columns, nested columns as JSON or as a
//!   string holding JSON.
//!
//! Design note: a shape is recognised by keys only its records have (`category` or
//! `properties`; `Type`, `Category` or `TimeGenerated`; `createdDateTime`, `signInEventTypes`,
//! `isInteractive` or `@odata.type`), in that order, and never by what the values look like;
//! an object with none of them is a dead letter (`unknown_shape`) naming the keys it had. Each
//! shape is then turned into the one borrowed [`RawRecord`], so the rule and the output record
//! read one type and the same sign-in in any shape gives the same output. A Graph `signIn` *is*
//! a `Properties`; a row is mapped column by column (its column names are the ones Microsoft's
//! table reference gives, see README.md, "Input shapes").

use crate::category::Category;
use crate::decode::RecordError;
use crate::input::{
    DeviceDetail, Location, MfaDetail, Policy, Properties, RawRecord, RequirementPolicy, Status,
    Step,
};
use crate::lenient::{Code, Embedded, Flag, Text};
use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// The shape one record arrived in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Shape {
    /// A diagnostic setting's record: `category`, `time`, `resultType`, `properties{…}`.
    Diagnostic,
    /// A Microsoft Graph `signIn` resource, v1.0 or beta.
    Graph,
    /// A row of a Log Analytics sign-in table.
    LogAnalytics,
}

impl Shape {
    /// Every shape, in the order summaries list them.
    pub const ALL: [Shape; 3] = [Shape::Diagnostic, Shape::Graph, Shape::LogAnalytics];

    /// The name stats, metrics and the README use.
    pub fn as_str(self) -> &'static str {
        match self {
            Shape::Diagnostic => "diagnostic",
            Shape::Graph => "graph",
            Shape::LogAnalytics => "log_analytics",
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a record of no known shape (or not an object at all) is counted.
pub const UNKNOWN_SHAPE: &str = "unknown";

/// The Log Analytics sign-in tables and the category each one holds.
const TABLES: [(&str, Category); 5] = [
    ("SigninLogs", Category::SignInLogs),
    (
        "AADNonInteractiveUserSignInLogs",
        Category::NonInteractiveUserSignInLogs,
    ),
    ("ADFSSignInLogs", Category::AdfsSignInLogs),
    (
        "AADServicePrincipalSignInLogs",
        Category::ServicePrincipalSignInLogs,
    ),
    (
        "AADManagedIdentitySignInLogs",
        Category::ManagedIdentitySignInLogs,
    ),
];

/// What the top-level keys of one JSON object say.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Detected {
    Shape(Shape),
    /// None of the keys of a known shape: the keys seen, for the dead letter.
    Unknown(String),
}

/// How many keys an `unknown_shape` dead letter lists before it says how many more.
const KEYS_LISTED: usize = 12;

/// Reads only the keys of one object (values are skipped, not built).
pub(crate) fn detect(object: &str) -> Detected {
    struct Keys;
    impl<'de> Visitor<'de> for Keys {
        type Value = Detected;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Detected, A::Error> {
            let (mut diagnostic, mut row, mut graph) = (false, false, false);
            let (mut seen, mut count) = (Vec::new(), 0usize);
            while let Some(key) = map.next_key::<Text>()? {
                map.next_value::<IgnoredAny>()?;
                match key.as_str() {
                    "category" | "properties" => diagnostic = true,
                    "Type" | "Category" | "TimeGenerated" => row = true,
                    "createdDateTime" | "signInEventTypes" | "isInteractive" | "@odata.type" => {
                        graph = true
                    }
                    _ => {}
                }
                count += 1;
                if seen.len() < KEYS_LISTED {
                    seen.push(format!("{:?}", key.as_str()));
                }
            }
            Ok(if diagnostic {
                Detected::Shape(Shape::Diagnostic)
            } else if row {
                Detected::Shape(Shape::LogAnalytics)
            } else if graph {
                Detected::Shape(Shape::Graph)
            } else if count == 0 {
                Detected::Unknown("no keys at all".to_owned())
            } else if count > seen.len() {
                Detected::Unknown(format!(
                    "keys {} and {} more",
                    seen.join(", "),
                    count - seen.len()
                ))
            } else {
                Detected::Unknown(format!("keys {}", seen.join(", ")))
            })
        }
    }
    let mut de = serde_json::Deserializer::from_str(object);
    de::Deserializer::deserialize_map(&mut de, Keys)
        .unwrap_or_else(|e| Detected::Unknown(format!("an object that could not be read: {e}")))
}

/// The category of a Log Analytics row: its table (`Type`), else its `Category` column. A
/// table or category outside the sign-ins is kept as written, so the row is skipped as another
/// category, like a diagnostic record of `AuditLogs`.
fn row_category<'a>(
    table: Option<Text<'a>>,
    category: Option<Text<'a>>,
) -> Result<Text<'a>, RecordError> {
    let given = |t: Option<Text<'a>>| t.filter(|t| !t.as_str().trim().is_empty());
    if let Some(table) = given(table) {
        let name = table.as_str().trim();
        return Ok(TABLES
            .iter()
            .find(|(t, _)| t.eq_ignore_ascii_case(name))
            .map_or(table.clone(), |(_, c)| Text(Cow::Borrowed(c.as_str()))));
    }
    if let Some(category) = given(category) {
        return Ok(Category::parse(category.as_str().trim())
            .map_or(category, |c| Text(Cow::Borrowed(c.as_str()))));
    }
    Err(RecordError::Uncategorised {
        shape: Shape::LogAnalytics,
        detail: "neither Type nor Category".to_owned(),
    })
}

/// The category of a Graph `signIn`: `signInEventTypes` (beta) where it names one, else
/// `isInteractive`. Values that name no sign-in category are an error, not a guess.
fn graph_category(p: &Properties) -> Result<Category, RecordError> {
    let mut unknown = Vec::new();
    for t in p.sign_in_event_types.iter().flatten().flatten() {
        let name = t.as_str().trim();
        let found = [
            ("interactiveUser", Category::SignInLogs),
            ("nonInteractiveUser", Category::NonInteractiveUserSignInLogs),
            ("servicePrincipal", Category::ServicePrincipalSignInLogs),
            ("managedIdentity", Category::ManagedIdentitySignInLogs),
        ]
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name));
        match found {
            Some((_, c)) => return Ok(c),
            None => unknown.push(format!("{name:?}")),
        }
    }
    if !unknown.is_empty() {
        return Err(RecordError::Uncategorised {
            shape: Shape::Graph,
            detail: format!(
                "signInEventTypes [{}] name no sign-in category",
                unknown.join(", ")
            ),
        });
    }
    match p.is_interactive {
        Some(Flag(Some(true))) => Ok(Category::SignInLogs),
        Some(Flag(Some(false))) => Ok(Category::NonInteractiveUserSignInLogs),
        _ => Err(RecordError::Uncategorised {
            shape: Shape::Graph,
            detail: "neither signInEventTypes nor isInteractive".to_owned(),
        }),
    }
}

/// Decodes one Graph `signIn` into the record the rule reads.
pub(crate) fn graph(object: &str) -> Result<RawRecord<'_>, RecordError> {
    match serde_json::from_str::<Properties>(object) {
        Ok(p) => {
            let category = graph_category(&p)?;
            Ok(RawRecord {
                category: Some(Text(Cow::Borrowed(category.as_str()))),
                properties: Some(p),
                ..RawRecord::default()
            })
        }
        Err(error) => {
            #[derive(Deserialize)]
            #[serde(default, rename_all = "camelCase")]
            #[derive(Default)]
            struct Probe<'a> {
                #[serde(borrow)]
                sign_in_event_types: Option<Vec<Option<Text<'a>>>>,
                is_interactive: Option<Flag>,
            }
            let category = serde_json::from_str::<Probe>(object)
                .ok()
                .and_then(|p| {
                    graph_category(&Properties {
                        sign_in_event_types: p.sign_in_event_types,
                        is_interactive: p.is_interactive,
                        ..Properties::default()
                    })
                    .ok()
                })
                .map_or(crate::stats::NO_CATEGORY, Category::as_str);
            Err(RecordError::Invalid {
                category: category.to_owned(),
                error: error.to_string(),
            })
        }
    }
}

/// A row of a Log Analytics sign-in table: the columns the rule and the output record use,
/// under the names of Microsoft's table reference. Nested columns are `dynamic` in some tables
/// and `string` in others, so each is read either way.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct Row<'a> {
    #[serde(borrow, rename = "Type")]
    table: Option<Text<'a>>,
    #[serde(borrow)]
    category: Option<Text<'a>>,
    /// The Entra tenant (`TenantId` is the Log Analytics workspace, not a tenant).
    #[serde(borrow, rename = "AADTenantId")]
    aad_tenant_id: Option<Text<'a>>,
    #[serde(borrow)]
    time_generated: Option<Text<'a>>,
    #[serde(borrow)]
    created_date_time: Option<Text<'a>>,
    result_type: Option<Code>,
    #[serde(borrow)]
    id: Option<Text<'a>>,
    #[serde(borrow)]
    user_display_name: Option<Text<'a>>,
    #[serde(borrow)]
    user_principal_name: Option<Text<'a>>,
    #[serde(borrow)]
    user_id: Option<Text<'a>>,
    #[serde(borrow)]
    user_type: Option<Text<'a>>,
    #[serde(borrow)]
    app_id: Option<Text<'a>>,
    #[serde(borrow)]
    app_display_name: Option<Text<'a>>,
    #[serde(borrow, rename = "IPAddress")]
    ip_address: Option<Text<'a>>,
    #[serde(borrow)]
    client_app_used: Option<Text<'a>>,
    #[serde(borrow)]
    user_agent: Option<Text<'a>>,
    #[serde(borrow)]
    correlation_id: Option<Text<'a>>,
    #[serde(borrow)]
    conditional_access_status: Option<Text<'a>>,
    is_interactive: Option<Flag>,
    #[serde(borrow)]
    risk_level_during_sign_in: Option<Text<'a>>,
    #[serde(borrow)]
    risk_state: Option<Text<'a>>,
    #[serde(borrow)]
    resource_display_name: Option<Text<'a>>,
    /// The resource signed in to (`ResourceId` is the Azure resource of the log itself).
    #[serde(borrow)]
    resource_identity: Option<Text<'a>>,
    #[serde(borrow)]
    resource_tenant_id: Option<Text<'a>>,
    #[serde(borrow)]
    authentication_requirement: Option<Text<'a>>,
    #[serde(borrow)]
    session_id: Option<Text<'a>>,
    #[serde(borrow)]
    token_issuer_type: Option<Text<'a>>,
    #[serde(borrow)]
    authentication_protocol: Option<Text<'a>>,
    #[serde(borrow)]
    original_transfer_method: Option<Text<'a>>,
    #[serde(borrow)]
    incoming_token_type: Option<Text<'a>>,
    #[serde(borrow)]
    status: Embedded<Status<'a>>,
    #[serde(borrow)]
    device_detail: Embedded<DeviceDetail<'a>>,
    #[serde(borrow)]
    location_details: Embedded<Location<'a>>,
    #[serde(borrow)]
    mfa_detail: Embedded<MfaDetail<'a>>,
    #[serde(borrow)]
    conditional_access_policies: Embedded<Vec<Policy<'a>>>,
    #[serde(borrow)]
    applied_conditional_access_policies: Embedded<Vec<Policy<'a>>>,
    #[serde(borrow)]
    authentication_details: Embedded<Vec<Step<'a>>>,
    #[serde(borrow)]
    authentication_requirement_policies: Embedded<Vec<RequirementPolicy<'a>>>,
}

impl<'a> Row<'a> {
    fn into_record(self) -> Result<RawRecord<'a>, RecordError> {
        let category = row_category(self.table, self.category)?;
        // `ConditionalAccessPolicies` is the documented column; `SigninLogs` also has an
        // undocumented `AppliedConditionalAccessPolicies`, read only when the first is empty.
        let policies = match self.conditional_access_policies.into_inner() {
            Some(p) if !p.is_empty() => Some(p),
            first => self
                .applied_conditional_access_policies
                .into_inner()
                .or(first),
        };
        Ok(RawRecord {
            records: None,
            time: self.time_generated,
            category: Some(category),
            tenant_id: self.aad_tenant_id,
            result_type: self.result_type,
            caller_ip_address: None,
            correlation_id: None,
            properties: Some(Properties {
                id: self.id,
                created_date_time: self.created_date_time,
                user_display_name: self.user_display_name,
                user_principal_name: self.user_principal_name,
                user_id: self.user_id,
                user_type: self.user_type,
                app_id: self.app_id,
                app_display_name: self.app_display_name,
                ip_address: self.ip_address,
                client_app_used: self.client_app_used,
                user_agent: self.user_agent,
                correlation_id: self.correlation_id,
                conditional_access_status: self.conditional_access_status,
                is_interactive: self.is_interactive,
                risk_level_during_sign_in: self.risk_level_during_sign_in,
                risk_state: self.risk_state,
                resource_display_name: self.resource_display_name,
                resource_id: self.resource_identity,
                resource_tenant_id: self.resource_tenant_id,
                authentication_requirement: self.authentication_requirement,
                status: self.status.into_inner(),
                device_detail: self.device_detail.into_inner(),
                location: self.location_details.into_inner(),
                mfa_detail: self.mfa_detail.into_inner(),
                applied_conditional_access_policies: policies,
                authentication_details: self.authentication_details.into_inner(),
                authentication_requirement_policies: self
                    .authentication_requirement_policies
                    .into_inner(),
                session_id: self.session_id,
                token_issuer_type: self.token_issuer_type,
                authentication_protocol: self.authentication_protocol,
                original_transfer_method: self.original_transfer_method,
                incoming_token_type: self.incoming_token_type,
                sign_in_event_types: None,
            }),
        })
    }
}

/// What a Log Analytics row decoded to.
// Nearly every row is a record: boxing it would cost an allocation per row.
#[allow(clippy::large_enum_variant)]
pub(crate) enum RowOutcome<'a> {
    /// A row the rule can read (or skip as another table).
    Record(RawRecord<'a>),
    /// A row of another table whose columns the sign-in types do not accept: skipped like
    /// any other category, whatever its shape.
    Other(Text<'a>),
}

/// Decodes one Log Analytics row into the record the rule reads.
pub(crate) fn log_analytics(object: &str) -> Result<RowOutcome<'_>, RecordError> {
    match serde_json::from_str::<Row>(object) {
        Ok(row) => row.into_record().map(RowOutcome::Record),
        Err(error) => {
            #[derive(Default, Deserialize)]
            #[serde(default, rename_all = "PascalCase")]
            struct Probe<'a> {
                #[serde(borrow, rename = "Type")]
                table: Option<Text<'a>>,
                #[serde(borrow)]
                category: Option<Text<'a>>,
            }
            let probe = serde_json::from_str::<Probe>(object).unwrap_or_default();
            match row_category(probe.table, probe.category) {
                Ok(c) if Category::parse(c.as_str()).is_none() => Ok(RowOutcome::Other(c)),
                Ok(c) => Err(RecordError::Invalid {
                    category: c.as_str().to_owned(),
                    error: error.to_string(),
                }),
                Err(_) => Err(RecordError::Invalid {
                    category: crate::stats::NO_CATEGORY.to_owned(),
                    error: error.to_string(),
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(json: &str) -> Detected {
        detect(json)
    }

    #[test]
    fn each_shape_is_told_by_keys_only_it_has() {
        let d = |s| Detected::Shape(s);
        assert_eq!(shape(r#"{"category":"x"}"#), d(Shape::Diagnostic));
        assert_eq!(shape(r#"{"properties":{}}"#), d(Shape::Diagnostic));
        assert_eq!(shape(r#"{"Type":"SigninLogs"}"#), d(Shape::LogAnalytics));
        assert_eq!(
            shape(r#"{"TimeGenerated":"t","Id":"i"}"#),
            d(Shape::LogAnalytics)
        );
        assert_eq!(
            shape(r#"{"Category":"SignInLogs"}"#),
            d(Shape::LogAnalytics)
        );
        assert_eq!(
            shape(r#"{"id":"i","createdDateTime":"t"}"#),
            d(Shape::Graph)
        );
        assert_eq!(shape(r#"{"signInEventTypes":[]}"#), d(Shape::Graph));
        assert_eq!(shape(r#"{"isInteractive":true}"#), d(Shape::Graph));
        // The diagnostic keys win: a record that has them is read as Azure Monitor wrote it.
        assert_eq!(
            shape(r#"{"Type":"SigninLogs","createdDateTime":"t","category":"SignInLogs"}"#),
            d(Shape::Diagnostic)
        );
        assert_eq!(
            shape(r#"{"TimeGenerated":"t","createdDateTime":"t"}"#),
            d(Shape::LogAnalytics)
        );
    }

    #[test]
    fn an_unknown_object_names_the_keys_it_had() {
        assert_eq!(
            shape(r#"{"id":"x","Status":{},"k\u00e9y":1}"#),
            Detected::Unknown(r#"keys "id", "Status", "kéy""#.to_owned())
        );
        assert_eq!(shape("{}"), Detected::Unknown("no keys at all".to_owned()));
        let many: Vec<String> = (0..15).map(|i| format!("\"k{i}\":{i}")).collect();
        let Detected::Unknown(text) = shape(&format!("{{{}}}", many.join(","))) else {
            panic!()
        };
        assert!(text.ends_with("\"k11\" and 3 more"), "{text}");
    }

    #[test]
    fn a_table_names_the_category_and_other_tables_are_kept_as_written() {
        let t = |s: &str| Some(Text(Cow::Owned(s.to_owned())));
        let cat = |table, category| row_category(table, category).map(|c| c.0.into_owned());
        assert_eq!(cat(t("SigninLogs"), None).unwrap(), "SignInLogs");
        assert_eq!(
            cat(t("AADNonInteractiveUserSignInLogs"), t("whatever")).unwrap(),
            "NonInteractiveUserSignInLogs"
        );
        assert_eq!(cat(t("adfssigninlogs"), None).unwrap(), "ADFSSignInLogs");
        assert_eq!(
            cat(t("AADServicePrincipalSignInLogs"), None).unwrap(),
            "ServicePrincipalSignInLogs"
        );
        assert_eq!(
            cat(t("AADManagedIdentitySignInLogs"), None).unwrap(),
            "ManagedIdentitySignInLogs"
        );
        assert_eq!(cat(t("AuditLogs"), t("SignInLogs")).unwrap(), "AuditLogs");
        assert_eq!(
            cat(None, t("NonInteractiveUserSignInLogs")).unwrap(),
            "NonInteractiveUserSignInLogs"
        );
        assert_eq!(cat(t(" "), t("UserManagement")).unwrap(), "UserManagement");
        assert_eq!(cat(None, None).unwrap_err().code(), "no_category");
    }

    #[test]
    fn a_graph_category_comes_from_the_event_types_then_from_is_interactive() {
        let category = |json: &str| {
            let p: Properties = serde_json::from_str(json).unwrap();
            graph_category(&p).map_err(|e| e.to_string())
        };
        for (types, want) in [
            ("interactiveUser", Category::SignInLogs),
            ("nonInteractiveUser", Category::NonInteractiveUserSignInLogs),
            ("servicePrincipal", Category::ServicePrincipalSignInLogs),
            ("managedIdentity", Category::ManagedIdentitySignInLogs),
        ] {
            // The event type wins over a contradicting isInteractive.
            let json = format!(r#"{{"signInEventTypes":["{types}"],"isInteractive":true}}"#);
            assert_eq!(category(&json), Ok(want), "{types}");
        }
        assert_eq!(
            category(r#"{"isInteractive":false,"signInEventTypes":[]}"#),
            Ok(Category::NonInteractiveUserSignInLogs)
        );
        assert_eq!(
            category(r#"{"isInteractive":true}"#),
            Ok(Category::SignInLogs)
        );
        let err = category(r#"{"signInEventTypes":["unknownFutureValue"],"isInteractive":true}"#)
            .unwrap_err();
        assert!(err.contains("\"unknownFutureValue\""), "{err}");
        let err = category(r#"{"isInteractive":null}"#).unwrap_err();
        assert!(
            err.contains("neither signInEventTypes nor isInteractive"),
            "{err}"
        );
    }
}
