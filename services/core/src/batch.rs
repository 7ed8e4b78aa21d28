//! Output records into Arrow record batches: the in-memory form of the archiver's Parquet rows.
//!
//! Sits beside `schema` so that the one shape of a row is defined in one crate: the builder
//! appends a `SignIn` field by field into typed Arrow builders (no JSON round trip, no
//! reflection), and `finish` checks its arrays against `sign_in_schema()` — a drift between the
//! record, the schema and this file fails a test here, not a file in production.

use crate::lenient::Text;
use crate::record::{AuthenticationStep, DeviceDetail, Location, PolicyResult, SignIn, Source};
use crate::schema::{self, sign_in_schema};
use arrow_array::builder::{
    BooleanBuilder, Int64Builder, ListBuilder, StringBuilder, StructBuilder,
    TimestampMicrosecondBuilder, UInt64Builder,
};
use arrow_array::{ArrayRef, RecordBatch, StructArray};
use arrow_buffer::NullBufferBuilder;
use arrow_schema::{ArrowError, DataType, Field};
use std::sync::Arc;

fn text(b: &mut StringBuilder, v: &Option<Text<'_>>) {
    b.append_option(v.as_ref().map(Text::as_str));
}

fn timestamps() -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::new().with_timezone("UTC")
}

fn list_of_text() -> ListBuilder<StringBuilder> {
    ListBuilder::new(StringBuilder::new())
        .with_field(Arc::new(Field::new_list_field(DataType::Utf8, false)))
}

fn list_of_struct(fields: arrow_schema::Fields) -> ListBuilder<StructBuilder> {
    ListBuilder::new(StructBuilder::from_fields(fields.clone(), 0)).with_field(Arc::new(
        Field::new_list_field(DataType::Struct(fields), false),
    ))
}

fn field_text(b: &mut StructBuilder, i: usize, v: &Option<Text<'_>>) {
    text(
        b.field_builder::<StringBuilder>(i)
            .expect("the struct's fields are built from the schema"),
        v,
    );
}

fn append_policies(b: &mut ListBuilder<StructBuilder>, items: &[PolicyResult<'_>]) {
    let s = b.values();
    for p in items {
        field_text(s, 0, &p.display_name);
        field_text(s, 1, &p.result);
        s.append(true);
    }
    b.append(true);
}

fn append_steps(b: &mut ListBuilder<StructBuilder>, items: &[AuthenticationStep<'_>]) {
    let s = b.values();
    for step in items {
        field_text(s, 0, &step.authentication_method);
        field_text(s, 1, &step.authentication_step_requirement);
        s.field_builder::<BooleanBuilder>(2)
            .expect("the struct's fields are built from the schema")
            .append_option(step.succeeded);
        field_text(s, 3, &step.authentication_step_result_detail);
        s.append(true);
    }
    b.append(true);
}

fn append_list(b: &mut ListBuilder<StringBuilder>, items: &[Text<'_>]) {
    for item in items {
        b.values().append_value(item.as_str());
    }
    b.append(true);
}

#[derive(Debug)]
struct LocationColumns {
    city: StringBuilder,
    state: StringBuilder,
    country_or_region: StringBuilder,
    valid: NullBufferBuilder,
}

impl LocationColumns {
    fn new() -> Self {
        LocationColumns {
            city: StringBuilder::new(),
            state: StringBuilder::new(),
            country_or_region: StringBuilder::new(),
            valid: NullBufferBuilder::new(0),
        }
    }

    fn append(&mut self, l: &Option<Location<'_>>) {
        match l {
            Some(l) => {
                text(&mut self.city, &l.city);
                text(&mut self.state, &l.state);
                text(&mut self.country_or_region, &l.country_or_region);
                self.valid.append_non_null();
            }
            None => {
                self.city.append_null();
                self.state.append_null();
                self.country_or_region.append_null();
                self.valid.append_null();
            }
        }
    }

    fn finish(&mut self) -> Result<StructArray, ArrowError> {
        StructArray::try_new(
            schema::location_fields(),
            vec![
                Arc::new(self.city.finish()),
                Arc::new(self.state.finish()),
                Arc::new(self.country_or_region.finish()),
            ],
            self.valid.finish(),
        )
    }
}

#[derive(Debug)]
struct DeviceColumns {
    operating_system: StringBuilder,
    browser: StringBuilder,
    is_compliant: BooleanBuilder,
    is_managed: BooleanBuilder,
    device_id: StringBuilder,
    display_name: StringBuilder,
    trust_type: StringBuilder,
    valid: NullBufferBuilder,
}

impl DeviceColumns {
    fn new() -> Self {
        DeviceColumns {
            operating_system: StringBuilder::new(),
            browser: StringBuilder::new(),
            is_compliant: BooleanBuilder::new(),
            is_managed: BooleanBuilder::new(),
            device_id: StringBuilder::new(),
            display_name: StringBuilder::new(),
            trust_type: StringBuilder::new(),
            valid: NullBufferBuilder::new(0),
        }
    }

    fn append(&mut self, d: &Option<DeviceDetail<'_>>) {
        match d {
            Some(d) => {
                text(&mut self.operating_system, &d.operating_system);
                text(&mut self.browser, &d.browser);
                self.is_compliant.append_option(d.is_compliant);
                self.is_managed.append_option(d.is_managed);
                text(&mut self.device_id, &d.device_id);
                text(&mut self.display_name, &d.display_name);
                text(&mut self.trust_type, &d.trust_type);
                self.valid.append_non_null();
            }
            None => {
                self.operating_system.append_null();
                self.browser.append_null();
                self.is_compliant.append_null();
                self.is_managed.append_null();
                self.device_id.append_null();
                self.display_name.append_null();
                self.trust_type.append_null();
                self.valid.append_null();
            }
        }
    }

    fn finish(&mut self) -> Result<StructArray, ArrowError> {
        StructArray::try_new(
            schema::device_detail_fields(),
            vec![
                Arc::new(self.operating_system.finish()),
                Arc::new(self.browser.finish()),
                Arc::new(self.is_compliant.finish()),
                Arc::new(self.is_managed.finish()),
                Arc::new(self.device_id.finish()),
                Arc::new(self.display_name.finish()),
                Arc::new(self.trust_type.finish()),
            ],
            self.valid.finish(),
        )
    }
}

#[derive(Debug)]
struct SourceColumns {
    kind: StringBuilder,
    event_hub: StringBuilder,
    partition: StringBuilder,
    offset: StringBuilder,
    sequence_number: Int64Builder,
    enqueued_time: TimestampMicrosecondBuilder,
    file: StringBuilder,
    line: UInt64Builder,
}

impl SourceColumns {
    fn new() -> Self {
        SourceColumns {
            kind: StringBuilder::new(),
            event_hub: StringBuilder::new(),
            partition: StringBuilder::new(),
            offset: StringBuilder::new(),
            sequence_number: Int64Builder::new(),
            enqueued_time: timestamps(),
            file: StringBuilder::new(),
            line: UInt64Builder::new(),
        }
    }

    fn append(&mut self, s: &Source<'_>) {
        self.kind.append_value(s.kind.as_str());
        text(&mut self.event_hub, &s.event_hub);
        text(&mut self.partition, &s.partition);
        text(&mut self.offset, &s.offset);
        self.sequence_number.append_option(s.sequence_number);
        self.enqueued_time.append_option(s.enqueued_time);
        text(&mut self.file, &s.file);
        self.line.append_option(s.line);
    }

    fn finish(&mut self) -> Result<StructArray, ArrowError> {
        StructArray::try_new(
            schema::source_fields(),
            vec![
                Arc::new(self.kind.finish()),
                Arc::new(self.event_hub.finish()),
                Arc::new(self.partition.finish()),
                Arc::new(self.offset.finish()),
                Arc::new(self.sequence_number.finish()),
                Arc::new(self.enqueued_time.finish()),
                Arc::new(self.file.finish()),
                Arc::new(self.line.finish()),
            ],
            None,
        )
    }
}

/// Accumulates output records column by column until the archiver rolls them into a file.
#[derive(Debug)]
pub struct BatchBuilder {
    rows: usize,
    id: StringBuilder,
    category: StringBuilder,
    tenant_id: StringBuilder,
    user_id: StringBuilder,
    user_principal_name: StringBuilder,
    user_display_name: StringBuilder,
    user_type: StringBuilder,
    created_date_time: TimestampMicrosecondBuilder,
    app_id: StringBuilder,
    app_display_name: StringBuilder,
    resource_id: StringBuilder,
    resource_display_name: StringBuilder,
    ip_address: StringBuilder,
    client_app_used: StringBuilder,
    is_interactive: BooleanBuilder,
    login_succeeded: BooleanBuilder,
    failure_reason: StringBuilder,
    mfa_required: BooleanBuilder,
    mfa_auth_method: StringBuilder,
    mfa_auth_detail: StringBuilder,
    mfa_result: StringBuilder,
    reason: StringBuilder,
    policies: ListBuilder<StringBuilder>,
    conditional_access_status: StringBuilder,
    authentication_methods: ListBuilder<StringBuilder>,
    location: LocationColumns,
    device_detail: DeviceColumns,
    risk_level_during_sign_in: StringBuilder,
    risk_state: StringBuilder,
    correlation_id: StringBuilder,
    user_agent: StringBuilder,
    authentication_requirement: StringBuilder,
    session_id: StringBuilder,
    token_issuer_type: StringBuilder,
    authentication_protocol: StringBuilder,
    original_transfer_method: StringBuilder,
    incoming_token_type: StringBuilder,
    mfa_requirement_providers: ListBuilder<StringBuilder>,
    mfa_policies_not_applied: ListBuilder<StructBuilder>,
    authentication_steps: ListBuilder<StructBuilder>,
    source: SourceColumns,
    ingested_at: TimestampMicrosecondBuilder,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchBuilder {
    /// An empty builder, with the columns of the output schema.
    pub fn new() -> BatchBuilder {
        BatchBuilder {
            rows: 0,
            id: StringBuilder::new(),
            category: StringBuilder::new(),
            tenant_id: StringBuilder::new(),
            user_id: StringBuilder::new(),
            user_principal_name: StringBuilder::new(),
            user_display_name: StringBuilder::new(),
            user_type: StringBuilder::new(),
            created_date_time: timestamps(),
            app_id: StringBuilder::new(),
            app_display_name: StringBuilder::new(),
            resource_id: StringBuilder::new(),
            resource_display_name: StringBuilder::new(),
            ip_address: StringBuilder::new(),
            client_app_used: StringBuilder::new(),
            is_interactive: BooleanBuilder::new(),
            login_succeeded: BooleanBuilder::new(),
            failure_reason: StringBuilder::new(),
            mfa_required: BooleanBuilder::new(),
            mfa_auth_method: StringBuilder::new(),
            mfa_auth_detail: StringBuilder::new(),
            mfa_result: StringBuilder::new(),
            reason: StringBuilder::new(),
            policies: list_of_text(),
            conditional_access_status: StringBuilder::new(),
            authentication_methods: list_of_text(),
            location: LocationColumns::new(),
            device_detail: DeviceColumns::new(),
            risk_level_during_sign_in: StringBuilder::new(),
            risk_state: StringBuilder::new(),
            correlation_id: StringBuilder::new(),
            user_agent: StringBuilder::new(),
            authentication_requirement: StringBuilder::new(),
            session_id: StringBuilder::new(),
            token_issuer_type: StringBuilder::new(),
            authentication_protocol: StringBuilder::new(),
            original_transfer_method: StringBuilder::new(),
            incoming_token_type: StringBuilder::new(),
            mfa_requirement_providers: list_of_text(),
            mfa_policies_not_applied: list_of_struct(schema::policy_result_fields()),
            authentication_steps: list_of_struct(schema::step_fields()),
            source: SourceColumns::new(),
            ingested_at: timestamps(),
        }
    }

    /// Rows appended since the last `finish`.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// True when no row was appended since the last `finish`.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends one record as one row.
    pub fn append(&mut self, r: &SignIn<'_>) {
        self.rows += 1;
        self.id.append_value(r.id.as_str());
        self.category.append_value(r.category.as_str());
        text(&mut self.tenant_id, &r.tenant_id);
        text(&mut self.user_id, &r.user_id);
        text(&mut self.user_principal_name, &r.user_principal_name);
        text(&mut self.user_display_name, &r.user_display_name);
        text(&mut self.user_type, &r.user_type);
        self.created_date_time.append_value(r.created_date_time);
        text(&mut self.app_id, &r.app_id);
        text(&mut self.app_display_name, &r.app_display_name);
        text(&mut self.resource_id, &r.resource_id);
        text(&mut self.resource_display_name, &r.resource_display_name);
        text(&mut self.ip_address, &r.ip_address);
        text(&mut self.client_app_used, &r.client_app_used);
        self.is_interactive.append_option(r.is_interactive);
        self.login_succeeded.append_value(r.login_succeeded);
        text(&mut self.failure_reason, &r.failure_reason);
        self.mfa_required.append_value(r.mfa_required);
        text(&mut self.mfa_auth_method, &r.mfa_auth_method);
        text(&mut self.mfa_auth_detail, &r.mfa_auth_detail);
        text(&mut self.mfa_result, &r.mfa_result);
        self.reason.append_value(r.reason.as_str());
        append_list(&mut self.policies, &r.policies);
        text(
            &mut self.conditional_access_status,
            &r.conditional_access_status,
        );
        append_list(&mut self.authentication_methods, &r.authentication_methods);
        self.location.append(&r.location);
        self.device_detail.append(&r.device_detail);
        text(
            &mut self.risk_level_during_sign_in,
            &r.risk_level_during_sign_in,
        );
        text(&mut self.risk_state, &r.risk_state);
        text(&mut self.correlation_id, &r.correlation_id);
        text(&mut self.user_agent, &r.user_agent);
        text(
            &mut self.authentication_requirement,
            &r.authentication_requirement,
        );
        text(&mut self.session_id, &r.session_id);
        text(&mut self.token_issuer_type, &r.token_issuer_type);
        text(
            &mut self.authentication_protocol,
            &r.authentication_protocol,
        );
        text(
            &mut self.original_transfer_method,
            &r.original_transfer_method,
        );
        text(&mut self.incoming_token_type, &r.incoming_token_type);
        append_list(
            &mut self.mfa_requirement_providers,
            &r.mfa_requirement_providers,
        );
        append_policies(
            &mut self.mfa_policies_not_applied,
            &r.mfa_policies_not_applied,
        );
        append_steps(&mut self.authentication_steps, &r.authentication_steps);
        self.source.append(&r.source);
        self.ingested_at.append_value(r.ingested_at);
    }

    /// Takes the rows appended so far as one batch of `sign_in_schema()`; the builder starts
    /// empty again.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        self.rows = 0;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.id.finish()),
            Arc::new(self.category.finish()),
            Arc::new(self.tenant_id.finish()),
            Arc::new(self.user_id.finish()),
            Arc::new(self.user_principal_name.finish()),
            Arc::new(self.user_display_name.finish()),
            Arc::new(self.user_type.finish()),
            Arc::new(self.created_date_time.finish()),
            Arc::new(self.app_id.finish()),
            Arc::new(self.app_display_name.finish()),
            Arc::new(self.resource_id.finish()),
            Arc::new(self.resource_display_name.finish()),
            Arc::new(self.ip_address.finish()),
            Arc::new(self.client_app_used.finish()),
            Arc::new(self.is_interactive.finish()),
            Arc::new(self.login_succeeded.finish()),
            Arc::new(self.failure_reason.finish()),
            Arc::new(self.mfa_required.finish()),
            Arc::new(self.mfa_auth_method.finish()),
            Arc::new(self.mfa_auth_detail.finish()),
            Arc::new(self.mfa_result.finish()),
            Arc::new(self.reason.finish()),
            Arc::new(self.policies.finish()),
            Arc::new(self.conditional_access_status.finish()),
            Arc::new(self.authentication_methods.finish()),
            Arc::new(self.location.finish()?),
            Arc::new(self.device_detail.finish()?),
            Arc::new(self.risk_level_during_sign_in.finish()),
            Arc::new(self.risk_state.finish()),
            Arc::new(self.correlation_id.finish()),
            Arc::new(self.user_agent.finish()),
            Arc::new(self.authentication_requirement.finish()),
            Arc::new(self.session_id.finish()),
            Arc::new(self.token_issuer_type.finish()),
            Arc::new(self.authentication_protocol.finish()),
            Arc::new(self.original_transfer_method.finish()),
            Arc::new(self.incoming_token_type.finish()),
            Arc::new(self.mfa_requirement_providers.finish()),
            Arc::new(self.mfa_policies_not_applied.finish()),
            Arc::new(self.authentication_steps.finish()),
            Arc::new(self.source.finish()?),
            Arc::new(self.ingested_at.finish()),
        ];
        RecordBatch::try_new(sign_in_schema(), columns)
    }
}
