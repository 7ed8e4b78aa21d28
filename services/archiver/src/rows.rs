//! Output records straight from their JSON into Arrow columns: the archiver's decoder.
//!
//! One pass of serde_json's parser over the Kafka value appends each field to its column as it
//! is read — text is copied once, from the value into the column, and nothing else is
//! allocated per record: no `SignIn`, no `Vec` per list, no `String` per escaped text or
//! instant. The columns are built from `mfagap_core::schema::sign_in_schema()` itself (one
//! column per field, lists and structs nested as in the schema), so a batch always has the
//! schema's shape; `finish` checks it against the schema once more.
//!
//! Design note: the fast path only ever *narrows* what is read. It takes a value when it is an
//! object whose fields have exactly the types the native record writes (text or `null` for a
//! text field, `true`/`false`, integers, instants as text, lists as arrays, structs as objects;
//! an absent optional field is null, an absent list of version 2 is empty); anything else —
//! a number where text is expected, a struct written as an array, a duplicated field, an
//! absent field it is not sure of — makes it give up, roll the row back (every column is
//! truncated to the rows before it) and report [`Failed::Invalid`]. The caller then reads the
//! value as the core's `SignIn` (the reference: what it refuses is a dead letter with its
//! reason, what it takes is re-encoded in its one canonical form and decoded here). So a value
//! is taken or refused exactly as the `SignIn` path decides, and a row holds exactly the
//! values it would; the test at the bottom and `tests/rows.rs` compare the two on generated
//! records and on the edges. See ARCHITECTURE.md, step 9.

use arrow_array::{
    ArrayRef, BooleanArray, Int64Array, ListArray, RecordBatch, StringArray, StructArray,
    TimestampMicrosecondArray, UInt64Array,
};
use arrow_buffer::{Buffer, NullBufferBuilder, OffsetBuffer, ScalarBuffer};
use arrow_schema::{ArrowError, DataType, Field, FieldRef, Fields, TimeUnit};
use mfagap_core::Reason;
use mfagap_core::schema::sign_in_schema;
use mfagap_core::timestamp::{self, Micros};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;
use std::sync::{Arc, OnceLock};

/// Why a value did not become a row. Either way, nothing of it was kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failed {
    /// Not a record in the native record's own form: read it the reference way.
    Invalid,
    /// Its text does not fit in this batch's 32-bit offsets: finish the batch and try again.
    Full,
}

/// Lists of version 2 that a version 1 record does not have: absent means empty.
const EMPTY_WHEN_ABSENT: [&str; 3] = [
    "mfaRequirementProviders",
    "mfaPoliciesNotApplied",
    "authenticationSteps",
];

/// What an absent field becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Absent {
    Null,
    Empty,
    /// Give up: let the reference decide.
    GiveUp,
}

/// Text, and the `reason` column: offsets into one buffer of UTF-8.
#[derive(Debug)]
struct Texts {
    offsets: Vec<i32>,
    data: Vec<u8>,
    nulls: NullBufferBuilder,
}

impl Texts {
    fn new() -> Texts {
        Texts {
            offsets: vec![0],
            data: Vec::new(),
            nulls: NullBufferBuilder::new(0),
        }
    }

    fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    fn push(&mut self, s: &str) -> Result<(), Failed> {
        self.data.extend_from_slice(s.as_bytes());
        let end = i32::try_from(self.data.len()).map_err(|_| Failed::Full)?;
        self.offsets.push(end);
        self.nulls.append_non_null();
        Ok(())
    }

    fn push_null(&mut self) {
        self.offsets.push(*self.offsets.last().unwrap_or(&0));
        self.nulls.append_null();
    }

    fn truncate(&mut self, rows: usize) {
        if self.len() > rows {
            self.offsets.truncate(rows + 1);
            self.data.truncate(self.offsets[rows] as usize);
            self.nulls.truncate(rows);
        }
        // A push that failed as `Full` may have left bytes past the last offset.
        let end = *self.offsets.last().unwrap_or(&0) as usize;
        self.data.truncate(end);
    }

    fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        // The next batch is about as large: room for it up front, not grown by doubling.
        let mut next = Vec::with_capacity(self.offsets.len());
        next.push(0);
        let offsets = std::mem::replace(&mut self.offsets, next);
        let room = self.data.len();
        let data = std::mem::replace(&mut self.data, Vec::with_capacity(room));
        Ok(Arc::new(StringArray::try_new(
            OffsetBuffer::new(ScalarBuffer::from(offsets)),
            Buffer::from_vec(data),
            self.nulls.finish(),
        )?))
    }
}

/// Fixed-width values: booleans, integers and instants.
#[derive(Debug)]
struct Values<T> {
    values: Vec<T>,
    nulls: NullBufferBuilder,
}

impl<T: Copy + Default> Values<T> {
    fn new() -> Values<T> {
        Values {
            values: Vec::new(),
            nulls: NullBufferBuilder::new(0),
        }
    }

    fn push(&mut self, v: T) {
        self.values.push(v);
        self.nulls.append_non_null();
    }

    fn push_option(&mut self, v: Option<T>) {
        match v {
            Some(v) => self.push(v),
            None => self.push_null(),
        }
    }

    fn push_null(&mut self) {
        self.values.push(T::default());
        self.nulls.append_null();
    }

    fn take(&mut self) -> Vec<T> {
        let room = self.values.len();
        std::mem::replace(&mut self.values, Vec::with_capacity(room))
    }

    fn truncate(&mut self, rows: usize) {
        if self.values.len() > rows {
            self.values.truncate(rows);
            self.nulls.truncate(rows);
        }
    }
}

/// A list whose items are never null: offsets into the item column.
#[derive(Debug)]
struct List {
    offsets: Vec<i32>,
    field: FieldRef,
    items: Box<Column>,
}

/// A struct: one child per field, and its own validity.
#[derive(Debug)]
struct Struct {
    rows: usize,
    fields: Fields,
    children: Vec<Column>,
    nulls: NullBufferBuilder,
}

#[derive(Debug)]
enum Data {
    Text(Texts),
    Reason(Texts),
    Bool(Values<bool>),
    Int64(Values<i64>),
    UInt64(Values<u64>),
    Time(Values<Micros>),
    List(List),
    Struct(Struct),
}

/// One column of the schema, at any depth.
#[derive(Debug)]
struct Column {
    nullable: bool,
    absent: Absent,
    data: Data,
}

impl Column {
    /// The column of `field`; `top` says it is a field of the record itself.
    fn of(field: &Field, top: bool) -> Result<Column, String> {
        let data = match field.data_type() {
            DataType::Utf8 if top && field.name() == "reason" => Data::Reason(Texts::new()),
            DataType::Utf8 => Data::Text(Texts::new()),
            DataType::Boolean => Data::Bool(Values::new()),
            DataType::Int64 => Data::Int64(Values::new()),
            DataType::UInt64 => Data::UInt64(Values::new()),
            DataType::Timestamp(TimeUnit::Microsecond, Some(tz)) if tz.as_ref() == "UTC" => {
                Data::Time(Values::new())
            }
            DataType::List(item) if !item.is_nullable() => Data::List(List {
                offsets: vec![0],
                field: item.clone(),
                items: Box::new(Column::of(item, false)?),
            }),
            DataType::Struct(fields) => Data::Struct(Struct::of(fields, false)?),
            other => {
                return Err(format!(
                    "the output schema's column {} is {other}, which the archiver does not build",
                    field.name()
                ));
            }
        };
        let absent = match &data {
            // Its reader takes an absent instant as an error, not as null.
            Data::Time(_) => Absent::GiveUp,
            Data::List(_) if top && EMPTY_WHEN_ABSENT.contains(&field.name().as_str()) => {
                Absent::Empty
            }
            _ if field.is_nullable() => Absent::Null,
            _ => Absent::GiveUp,
        };
        Ok(Column {
            nullable: field.is_nullable(),
            absent,
            data,
        })
    }

    fn len(&self) -> usize {
        match &self.data {
            Data::Text(t) | Data::Reason(t) => t.len(),
            Data::Bool(v) => v.values.len(),
            Data::Int64(v) | Data::Time(v) => v.values.len(),
            Data::UInt64(v) => v.values.len(),
            Data::List(l) => l.offsets.len() - 1,
            Data::Struct(s) => s.rows,
        }
    }

    /// One null row (under a null struct too, where the struct's validity masks it).
    fn push_null(&mut self) {
        match &mut self.data {
            Data::Text(t) | Data::Reason(t) => t.push_null(),
            Data::Bool(v) => v.push_null(),
            Data::Int64(v) | Data::Time(v) => v.push_null(),
            Data::UInt64(v) => v.push_null(),
            // Lists are never null: an empty one.
            Data::List(l) => l.offsets.push(*l.offsets.last().unwrap_or(&0)),
            Data::Struct(s) => s.push_null(),
        }
    }

    /// A field the value did not have.
    fn absent(&mut self) -> Result<(), Failed> {
        match self.absent {
            Absent::Null | Absent::Empty => {
                self.push_null();
                Ok(())
            }
            Absent::GiveUp => Err(Failed::Invalid),
        }
    }

    fn truncate(&mut self, rows: usize) {
        match &mut self.data {
            Data::Text(t) | Data::Reason(t) => t.truncate(rows),
            Data::Bool(v) => v.truncate(rows),
            Data::Int64(v) | Data::Time(v) => v.truncate(rows),
            Data::UInt64(v) => v.truncate(rows),
            Data::List(l) => {
                l.offsets.truncate(rows + 1);
                let items = *l.offsets.last().unwrap_or(&0) as usize;
                l.items.truncate(items);
            }
            Data::Struct(s) => s.truncate(rows),
        }
    }

    fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        Ok(match &mut self.data {
            Data::Text(t) | Data::Reason(t) => t.finish()?,
            Data::Bool(v) => Arc::new(BooleanArray::new(v.take().into(), v.nulls.finish())),
            Data::Int64(v) => Arc::new(Int64Array::try_new(
                ScalarBuffer::from(v.take()),
                v.nulls.finish(),
            )?),
            Data::UInt64(v) => Arc::new(UInt64Array::try_new(
                ScalarBuffer::from(v.take()),
                v.nulls.finish(),
            )?),
            Data::Time(v) => Arc::new(
                TimestampMicrosecondArray::try_new(ScalarBuffer::from(v.take()), v.nulls.finish())?
                    .with_timezone("UTC"),
            ),
            Data::List(l) => {
                let mut next = Vec::with_capacity(l.offsets.len());
                next.push(0);
                let offsets = std::mem::replace(&mut l.offsets, next);
                Arc::new(ListArray::try_new(
                    l.field.clone(),
                    OffsetBuffer::new(ScalarBuffer::from(offsets)),
                    l.items.finish()?,
                    None,
                )?)
            }
            Data::Struct(s) => {
                let rows = std::mem::take(&mut s.rows);
                let children = s
                    .children
                    .iter_mut()
                    .map(Column::finish)
                    .collect::<Result<Vec<_>, _>>()?;
                Arc::new(StructArray::try_new_with_length(
                    s.fields.clone(),
                    children,
                    s.nulls.finish(),
                    rows,
                )?)
            }
        })
    }
}

impl Struct {
    /// The columns of `fields`; `top` for the record's own.
    fn of(fields: &Fields, top: bool) -> Result<Struct, String> {
        Ok(Struct {
            rows: 0,
            fields: fields.clone(),
            children: fields
                .iter()
                .map(|f| Column::of(f, top))
                .collect::<Result<_, _>>()?,
            nulls: NullBufferBuilder::new(0),
        })
    }

    fn push_null(&mut self) {
        for c in &mut self.children {
            c.push_null();
        }
        self.nulls.append_null();
        self.rows += 1;
    }

    fn truncate(&mut self, rows: usize) {
        for c in &mut self.children {
            c.truncate(rows);
        }
        if self.rows > rows {
            self.nulls.truncate(rows);
            self.rows = rows;
        }
    }

    fn position(&self, name: &str, expect: usize) -> Option<usize> {
        // Fields come in the schema's order when the ingest service wrote them: one
        // comparison per field, not a search.
        if self.fields.get(expect).is_some_and(|f| f.name() == name) {
            return Some(expect);
        }
        self.fields.iter().position(|f| f.name() == name)
    }
}

/// The record's columns: rows are appended one value at a time, and taken out as a batch.
#[derive(Debug)]
pub(crate) struct Rows {
    record: Struct,
    /// Set by a text push that overflowed: the whole row fails as `Full`.
    full: bool,
    /// The `createdDateTime` of the row being read.
    created: Option<Micros>,
    /// Which field of the record `createdDateTime` is.
    created_index: usize,
}

impl Rows {
    /// Empty columns of the output schema.
    pub(crate) fn new() -> Rows {
        match Rows::of_schema() {
            Ok(rows) => rows,
            // The schema is the workspace's own constant, and a test builds these columns
            // from it: a type this file does not handle is a defect, never input.
            Err(e) => panic!("cannot build the archiver's columns: {e}"),
        }
    }

    fn of_schema() -> Result<Rows, String> {
        let schema = sign_in_schema();
        let created_index = schema
            .index_of("createdDateTime")
            .map_err(|e| e.to_string())?;
        Ok(Rows {
            record: Struct::of(schema.fields(), true)?,
            full: false,
            created: None,
            created_index,
        })
    }

    /// Rows appended since the last `finish`.
    pub(crate) fn len(&self) -> usize {
        self.record.rows
    }

    /// True when no row was appended since the last `finish`.
    pub(crate) fn is_empty(&self) -> bool {
        self.record.rows == 0
    }

    /// Appends the record in `json` as one row and returns its `createdDateTime`; on failure
    /// nothing of it is kept.
    pub(crate) fn push(&mut self, json: &str) -> Result<Micros, Failed> {
        let rows = self.record.rows;
        self.full = false;
        self.created = None;
        let mut de = serde_json::Deserializer::from_str(json);
        let read = RecordSeed(self)
            .deserialize(&mut de)
            .and_then(|()| de.end());
        match (read, self.created) {
            (Ok(()), Some(created)) => Ok(created),
            _ => {
                let failed = if self.full {
                    Failed::Full
                } else {
                    Failed::Invalid
                };
                self.truncate(rows);
                Err(failed)
            }
        }
    }

    /// Keeps the first `rows` rows only.
    pub(crate) fn truncate(&mut self, rows: usize) {
        self.record.truncate(rows);
    }

    /// The rows appended so far as a batch of the output schema; the columns start empty again.
    pub(crate) fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let columns = self
            .record
            .children
            .iter_mut()
            .map(Column::finish)
            .collect::<Result<Vec<_>, _>>()?;
        let rows = std::mem::take(&mut self.record.rows);
        // Validity of the record itself is always set: not part of the batch.
        let _ = self.record.nulls.finish();
        RecordBatch::try_new_with_options(
            sign_in_schema(),
            columns,
            &arrow_array::RecordBatchOptions::new().with_row_count(Some(rows)),
        )
    }
}

/// The record: an object, read into `Rows`.
struct RecordSeed<'r>(&'r mut Rows);

impl<'de> DeserializeSeed<'de> for RecordSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an output record")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        let rows = self.0;
        let mut ctx = Ctx {
            full: &mut rows.full,
            created: &mut rows.created,
            created_index: rows.created_index,
        };
        read_struct(&mut rows.record, map, &mut ctx, true)
    }
}

/// What a nested read reports back to the row.
struct Ctx<'r> {
    full: &'r mut bool,
    created: &'r mut Option<Micros>,
    created_index: usize,
}

impl Ctx<'_> {
    fn text<E: de::Error>(&mut self, t: &mut Texts, s: &str) -> Result<(), E> {
        t.push(s).map_err(|_| {
            *self.full = true;
            E::custom("the batch's text is full")
        })
    }
}

/// Reads one object into `s` as one row of it; `top` for the record itself.
fn read_struct<'de, A: MapAccess<'de>>(
    s: &mut Struct,
    mut map: A,
    ctx: &mut Ctx<'_>,
    top: bool,
) -> Result<(), A::Error> {
    let row = s.rows;
    let mut expect = 0;
    while let Some(key) = map.next_key_seed(KeySeed { s, expect })? {
        let Some(i) = key else {
            map.next_value::<IgnoredAny>()?;
            continue;
        };
        let child = &mut s.children[i];
        if child.len() > row {
            return Err(de::Error::custom("duplicate field"));
        }
        let created = top && i == ctx.created_index;
        map.next_value_seed(ValueSeed {
            column: &mut s.children[i],
            ctx,
            created,
        })?;
        expect = i + 1;
    }
    for c in &mut s.children {
        if c.len() == row {
            c.absent().map_err(|_| de::Error::custom("absent field"))?;
        }
    }
    s.nulls.append_non_null();
    s.rows += 1;
    Ok(())
}

/// A field name, resolved to the struct's field, or `None` for a field it does not have.
struct KeySeed<'s> {
    s: &'s Struct,
    expect: usize,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<usize>, E> {
        Ok(self.s.position(v, self.expect))
    }
}

/// One field's value into its column.
struct ValueSeed<'c, 'r, 'x> {
    column: &'c mut Column,
    ctx: &'x mut Ctx<'r>,
    /// The record's `createdDateTime`: the caller wants it back.
    created: bool,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, '_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let nullable = self.column.nullable;
        let created = self.created;
        let ctx = self.ctx;
        match &mut self.column.data {
            Data::Text(t) => {
                if nullable {
                    d.deserialize_option(TextVisitor { t, ctx })
                } else {
                    d.deserialize_str(TextVisitor { t, ctx })
                }
            }
            Data::Reason(t) => {
                let r = Reason::deserialize(d)?;
                ctx.text(t, r.as_str())
            }
            Data::Bool(v) => {
                if nullable {
                    v.push_option(Option::<bool>::deserialize(d)?);
                } else {
                    v.push(bool::deserialize(d)?);
                }
                Ok(())
            }
            Data::Int64(v) => {
                if nullable {
                    v.push_option(Option::<i64>::deserialize(d)?);
                } else {
                    v.push(i64::deserialize(d)?);
                }
                Ok(())
            }
            Data::UInt64(v) => {
                if nullable {
                    v.push_option(Option::<u64>::deserialize(d)?);
                } else {
                    v.push(u64::deserialize(d)?);
                }
                Ok(())
            }
            Data::Time(v) => {
                let visitor = TimeVisitor { v, created, ctx };
                if nullable {
                    d.deserialize_option(visitor)
                } else {
                    d.deserialize_str(visitor)
                }
            }
            Data::List(l) => d.deserialize_seq(ListVisitor { l, ctx }),
            Data::Struct(s) => {
                if nullable {
                    d.deserialize_option(StructVisitor { s, ctx })
                } else {
                    d.deserialize_map(StructVisitor { s, ctx })
                }
            }
        }
    }
}

struct TextVisitor<'t, 'r, 'x> {
    t: &'t mut Texts,
    ctx: &'x mut Ctx<'r>,
}

impl<'de> Visitor<'de> for TextVisitor<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.ctx.text(self.t, v)
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.t.push_null();
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.visit_none()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

struct TimeVisitor<'v, 'r, 'x> {
    v: &'v mut Values<Micros>,
    created: bool,
    ctx: &'x mut Ctx<'r>,
}

impl<'de> Visitor<'de> for TimeVisitor<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an instant")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        let t = timestamp::parse(v).map_err(E::custom)?;
        if self.created {
            *self.ctx.created = Some(t);
        }
        self.v.push(t);
        Ok(())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.v.push_null();
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.visit_none()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

struct ListVisitor<'l, 'r, 'x> {
    l: &'l mut List,
    ctx: &'x mut Ctx<'r>,
}

impl<'de> Visitor<'de> for ListVisitor<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let items = &mut *self.l.items;
        while seq
            .next_element_seed(ItemSeed {
                column: items,
                ctx: self.ctx,
            })?
            .is_some()
        {}
        let end = i32::try_from(items.len()).map_err(|_| {
            *self.ctx.full = true;
            de::Error::custom("the batch's list is full")
        })?;
        self.l.offsets.push(end);
        Ok(())
    }
}

/// One item of a list: never null.
struct ItemSeed<'c, 'r, 'x> {
    column: &'c mut Column,
    ctx: &'x mut Ctx<'r>,
}

impl<'de> DeserializeSeed<'de> for ItemSeed<'_, '_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let ctx = self.ctx;
        match &mut self.column.data {
            Data::Text(t) => d.deserialize_str(TextVisitor { t, ctx }),
            Data::Struct(s) => d.deserialize_map(StructVisitor { s, ctx }),
            _ => Err(de::Error::custom("a list of this type is not read here")),
        }
    }
}

struct StructVisitor<'s, 'r, 'x> {
    s: &'s mut Struct,
    ctx: &'x mut Ctx<'r>,
}

impl<'de> Visitor<'de> for StructVisitor<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        read_struct(self.s, map, self.ctx, false)
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.s.push_null();
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.visit_none()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

/// Where the record's `createdDateTime` is, read without decoding it: which hour's columns
/// to append to. A guess — `push` returns the real value, which the caller compares.
pub(crate) fn created_hint(json: &str) -> Option<Micros> {
    const KEY: &[u8] = b"\"createdDateTime\":\"";
    static FINDER: OnceLock<memchr::memmem::Finder<'static>> = OnceLock::new();
    let finder = FINDER.get_or_init(|| memchr::memmem::Finder::new(KEY));
    let at = finder.find(json.as_bytes())? + KEY.len();
    let rest = &json[at..];
    let end = memchr::memchr(b'"', rest.as_bytes())?;
    timestamp::parse(&rest[..end]).ok()
}

#[cfg(test)]
mod tests;
