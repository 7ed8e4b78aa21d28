//! The same sign-in in every shape mfagap reads: converters from a diagnostic-setting record
//! (what Azure Monitor sends, and what the generator writes) to a Microsoft Graph `signIn`
//! resource and to a Log Analytics row, and the containers those come in.
//!
//! Each converter writes only what the target shape has (Graph has no `category`, `time` or
//! `resultType`; a row has PascalCase columns under the names of Microsoft's table reference)
//! and returns `None` for a record the shape cannot carry, so a test can say which records it
//! left out and why. README.md, "Input shapes", lists what each shape maps to.

use serde_json::{Map, Value, json};

/// Which Graph API version's `signIn` to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphVersion {
    /// v1.0: interactive and non-interactive user sign-ins, told apart by `isInteractive`.
    V1,
    /// beta: also service-principal and managed-identity sign-ins, each named by
    /// `signInEventTypes`.
    Beta,
}

impl GraphVersion {
    fn path(self) -> &'static str {
        match self {
            GraphVersion::V1 => "v1.0",
            GraphVersion::Beta => "beta",
        }
    }
}

/// How a row's nested columns (`Status`, `DeviceDetail`, `AuthenticationDetails`, …) are
/// written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Columns {
    /// Every nested column as JSON (an export of `dynamic` columns).
    Json,
    /// Every nested column as a string that holds JSON (an export of `string` columns, as
    /// `AADNonInteractiveUserSignInLogs` has nearly all of them).
    Strings,
    /// As the table reference types them: `dynamic` columns of `SigninLogs` as JSON, the
    /// `string` ones (and every nested column of the other tables) as strings.
    AsDocumented,
}

/// The Log Analytics workspace id that rows carry in `TenantId` (a workspace, not a tenant).
pub const WORKSPACE_ID: &str = "5c2b8f44-0e9a-4d3b-9a5e-6d1c2e7f8a90";

/// The Graph `signInEventTypes` value of a category, for the categories Graph lists.
fn event_type(category: &str) -> Option<&'static str> {
    match category {
        "SignInLogs" => Some("interactiveUser"),
        "NonInteractiveUserSignInLogs" => Some("nonInteractiveUser"),
        "ServicePrincipalSignInLogs" => Some("servicePrincipal"),
        "ManagedIdentitySignInLogs" => Some("managedIdentity"),
        _ => None,
    }
}

/// The Log Analytics table of a diagnostic category; `None` for a category no table holds.
pub fn table_of(category: &str) -> Option<&'static str> {
    match category {
        "SignInLogs" => Some("SigninLogs"),
        "NonInteractiveUserSignInLogs" => Some("AADNonInteractiveUserSignInLogs"),
        "ADFSSignInLogs" => Some("ADFSSignInLogs"),
        "ServicePrincipalSignInLogs" => Some("AADServicePrincipalSignInLogs"),
        "ManagedIdentitySignInLogs" => Some("AADManagedIdentitySignInLogs"),
        "AuditLogs" => Some("AuditLogs"),
        _ => None,
    }
}

fn given(v: Option<&Value>) -> Option<&Value> {
    v.filter(|v| !v.is_null() && v.as_str() != Some(""))
}

/// The error code that decides success: `properties.status.errorCode`, else `resultType`, as
/// a number (Graph's `errorCode` is an Int32).
fn error_code(record: &Value) -> Option<Value> {
    let code = given(record.pointer("/properties/status/errorCode"))
        .or_else(|| given(record.get("resultType")))?;
    match code {
        Value::String(s) => s.trim().parse::<i64>().ok().map(Value::from),
        other => Some(other.clone()),
    }
}

/// The Graph `signIn` of a diagnostic record: its `properties` at the top level, with
/// `createdDateTime`, `status.errorCode`, `ipAddress`, `correlationId` and `resourceTenantId`
/// filled from the envelope's `time`, `resultType`, `callerIpAddress`, `correlationId` and
/// `tenantId` where the properties lack them (Graph has no envelope; the output record reads
/// the envelope only when the properties lack a field, so nothing changes). v1.0 gets no
/// `signInEventTypes`; beta gets the one its category names.
///
/// `None` for what Graph does not list as a `signIn` (AD FS sign-ins, Microsoft's own service
/// principals, other categories), for workload identities in v1.0, and for a v1.0 record whose
/// `isInteractive` would name another category than its own.
pub fn graph_sign_in(record: &Value, version: GraphVersion) -> Option<Value> {
    let category = record.get("category")?.as_str()?;
    let kind = event_type(category)?;
    let mut p: Map<String, Value> = record.get("properties")?.as_object()?.clone();
    if version == GraphVersion::V1 {
        let interactive = match kind {
            "interactiveUser" => true,
            "nonInteractiveUser" => false,
            _ => return None,
        };
        if p.get("isInteractive").and_then(Value::as_bool) != Some(interactive) {
            return None;
        }
        p.remove("signInEventTypes");
    } else {
        p.insert("signInEventTypes".into(), json!([kind]));
    }
    if given(p.get("createdDateTime")).is_none() {
        p.insert("createdDateTime".into(), record.get("time")?.clone());
    }
    let code = error_code(record);
    let status = p
        .entry("status")
        .or_insert_with(|| json!({}))
        .as_object_mut()?;
    status.insert("errorCode".into(), code.unwrap_or(Value::Null));
    for (field, envelope) in [
        ("ipAddress", "callerIpAddress"),
        ("correlationId", "correlationId"),
        ("resourceTenantId", "tenantId"),
    ] {
        if given(p.get(field)).is_none()
            && let Some(v) = given(record.get(envelope))
        {
            p.insert(field.into(), v.clone());
        }
    }
    Some(Value::Object(p))
}

/// A page of `GET /auditLogs/signIns`, as Graph returns it.
pub fn graph_page(sign_ins: Vec<Value>, version: GraphVersion, next_link: Option<&str>) -> Value {
    let v = version.path();
    let mut page = json!({
        "@odata.context": format!("https://graph.microsoft.com/{v}/$metadata#auditLogs/signIns"),
        "value": sign_ins,
    });
    if let Some(token) = next_link {
        page["@odata.nextLink"] = format!(
            "https://graph.microsoft.com/{v}/auditLogs/signIns?$top=1000&$skiptoken={token}"
        )
        .into();
    }
    page
}

/// The nested columns, with the diagnostic property each holds and whether `SigninLogs` types
/// it `dynamic` (every other sign-in table types them `string`).
const NESTED: [(&str, &str, bool); 7] = [
    ("Status", "status", true),
    ("DeviceDetail", "deviceDetail", true),
    ("LocationDetails", "location", true),
    ("MfaDetail", "mfaDetail", true),
    (
        "ConditionalAccessPolicies",
        "appliedConditionalAccessPolicies",
        true,
    ),
    ("AuthenticationDetails", "authenticationDetails", false),
    (
        "AuthenticationRequirementPolicies",
        "authenticationRequirementPolicies",
        false,
    ),
];

/// The plain columns, with the diagnostic property each holds.
const PLAIN: [(&str, &str); 25] = [
    ("Id", "id"),
    ("CreatedDateTime", "createdDateTime"),
    ("UserDisplayName", "userDisplayName"),
    ("UserPrincipalName", "userPrincipalName"),
    ("UserId", "userId"),
    ("UserType", "userType"),
    ("AppId", "appId"),
    ("AppDisplayName", "appDisplayName"),
    ("ClientAppUsed", "clientAppUsed"),
    ("UserAgent", "userAgent"),
    ("ConditionalAccessStatus", "conditionalAccessStatus"),
    ("IsInteractive", "isInteractive"),
    ("RiskLevelDuringSignIn", "riskLevelDuringSignIn"),
    ("RiskState", "riskState"),
    ("ResourceDisplayName", "resourceDisplayName"),
    ("ResourceIdentity", "resourceId"),
    ("ResourceTenantId", "resourceTenantId"),
    ("HomeTenantId", "homeTenantId"),
    ("AuthenticationRequirement", "authenticationRequirement"),
    ("TokenIssuerType", "tokenIssuerType"),
    ("TokenIssuerName", "tokenIssuerName"),
    ("AuthenticationProtocol", "authenticationProtocol"),
    ("OriginalTransferMethod", "originalTransferMethod"),
    ("IncomingTokenType", "incomingTokenType"),
    ("SessionId", "sessionId"),
];

/// The Log Analytics row of a diagnostic record, as a workspace data export (or a KQL query
/// exported as JSON) writes it: `Type` names the table, `TenantId` is the workspace,
/// `AADTenantId` the Entra tenant (a `SigninLogs` column only), `ResourceId` the log's Azure
/// resource and `ResourceIdentity` the resource signed in to, `Location` the country and
/// `LocationDetails` the place. `None` for a category no table holds (Microsoft's own service
/// principals).
pub fn log_analytics_row(record: &Value, columns: Columns) -> Option<Value> {
    let category = record.get("category")?.as_str()?;
    let table = table_of(category)?;
    let empty = Map::new();
    let p = record
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut row = Map::new();
    let mut put = |k: &str, v: Option<&Value>| {
        if let Some(v) = v {
            row.insert(k.to_owned(), v.clone());
        }
    };
    put("TenantId", Some(&WORKSPACE_ID.into()));
    put("SourceSystem", Some(&"Azure".into()));
    put("Type", Some(&table.into()));
    put("TimeGenerated", record.get("time"));
    put("Category", record.get("category"));
    put("OperationName", record.get("operationName"));
    put("OperationVersion", record.get("operationVersion"));
    put("ResourceId", record.get("resourceId"));
    put("Location", record.get("location"));
    put("Level", record.get("level").or_else(|| record.get("Level")));
    put("DurationMs", record.get("durationMs"));
    put("ResultSignature", record.get("resultSignature"));
    put("ResultDescription", record.get("resultDescription"));
    // `ResultType` is a string column.
    let result = error_code(record).map(|c| Value::from(c.to_string().trim_matches('"')));
    put("ResultType", result.as_ref());
    if table == "SigninLogs" {
        put("AADTenantId", record.get("tenantId"));
    }
    put(
        "CorrelationId",
        given(p.get("correlationId")).or_else(|| record.get("correlationId")),
    );
    put(
        "IPAddress",
        given(p.get("ipAddress")).or_else(|| record.get("callerIpAddress")),
    );
    if table == "AuditLogs" {
        put("Id", p.get("id"));
        return Some(Value::Object(row));
    }
    for (column, property) in PLAIN {
        put(column, p.get(property));
    }
    for (column, property, dynamic) in NESTED {
        let Some(v) = p.get(property) else { continue };
        let as_json = match columns {
            Columns::Json => true,
            Columns::Strings => false,
            Columns::AsDocumented => dynamic && table == "SigninLogs",
        };
        let cell = if as_json || v.is_null() {
            v.clone()
        } else {
            Value::String(v.to_string())
        };
        put(column, Some(&cell));
    }
    Some(Value::Object(row))
}

/// A workspace data export's message: the rows under `records`, as the export rule sends
/// them to Event Hubs.
pub fn data_export(rows: Vec<Value>) -> Value {
    json!({ "records": rows })
}

/// The records of a diagnostic message body (the envelope, an array or one record).
pub fn records_of(body: &Value) -> Vec<Value> {
    match body {
        Value::Object(o) if o.contains_key("records") => {
            o["records"].as_array().cloned().unwrap_or_default()
        }
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Value {
        json!({
            "time": "2025-12-12T14:56:31.1234567Z",
            "resourceId": "/tenants/t/providers/Microsoft.aadiam",
            "category": "SignInLogs",
            "tenantId": "t",
            "resultType": "0",
            "callerIpAddress": "203.0.113.7",
            "correlationId": "c",
            "location": "FR",
            "properties": {
                "id": "i",
                "isInteractive": true,
                "status": {"additionalDetails": "MFA requirement satisfied by claim in the token"},
                "authenticationDetails": [{"authenticationMethod": "Password", "succeeded": true}],
                "location": {"city": "Paris", "countryOrRegion": "FR"},
                "resourceId": "00000003-0000-0000-c000-000000000000"
            }
        })
    }

    #[test]
    fn a_graph_sign_in_takes_what_the_envelope_said() {
        let g = graph_sign_in(&record(), GraphVersion::Beta).unwrap();
        assert_eq!(g["createdDateTime"], "2025-12-12T14:56:31.1234567Z");
        assert_eq!(g["status"]["errorCode"], 0);
        assert_eq!(g["ipAddress"], "203.0.113.7");
        assert_eq!(g["resourceTenantId"], "t");
        assert_eq!(g["signInEventTypes"], json!(["interactiveUser"]));
        assert!(g.get("category").is_none() && g.get("time").is_none());
        let v1 = graph_sign_in(&record(), GraphVersion::V1).unwrap();
        assert!(v1.get("signInEventTypes").is_none());
        let mut sp = record();
        sp["category"] = "ServicePrincipalSignInLogs".into();
        assert!(graph_sign_in(&sp, GraphVersion::V1).is_none());
        assert!(graph_sign_in(&sp, GraphVersion::Beta).is_some());
        sp["category"] = "ADFSSignInLogs".into();
        assert!(graph_sign_in(&sp, GraphVersion::Beta).is_none());
    }

    #[test]
    fn a_row_has_the_table_reference_columns() {
        let row = log_analytics_row(&record(), Columns::Strings).unwrap();
        assert_eq!(row["Type"], "SigninLogs");
        assert_eq!(row["TenantId"], WORKSPACE_ID);
        assert_eq!(row["AADTenantId"], "t");
        assert_eq!(row["ResultType"], "0");
        assert_eq!(
            row["ResourceIdentity"],
            "00000003-0000-0000-c000-000000000000"
        );
        assert_eq!(row["Location"], "FR");
        let details: Value =
            serde_json::from_str(row["LocationDetails"].as_str().unwrap()).unwrap();
        assert_eq!(details["city"], "Paris");
        let json = log_analytics_row(&record(), Columns::Json).unwrap();
        assert_eq!(json["LocationDetails"]["city"], "Paris");
        let documented = log_analytics_row(&record(), Columns::AsDocumented).unwrap();
        assert!(documented["LocationDetails"].is_object());
        assert!(documented["AuthenticationDetails"].is_string());
        let mut first_party = record();
        first_party["category"] = "MicrosoftServicePrincipalSignInLogs".into();
        assert!(log_analytics_row(&first_party, Columns::Json).is_none());
    }
}
