//! Timestamps: every form Azure writes in, one form out.
//!
//! Sign-in logs carry instants with 0 to 9 fractional digits, `Z` or any offset, and, from some
//! export paths, the US form `11/14/2025 1:48:53 AM`. Downstream readers (Spark, Athena, DuckDB)
//! want UTC microseconds, so everything is normalised to an `i64` of microseconds since the Unix
//! epoch; digits past the microsecond are truncated, never rounded, so an instant never moves
//! into the next second, hour or day partition.

use chrono::{DateTime, Datelike, NaiveDate, Timelike};
use serde::Serializer;
use std::fmt;

/// Microseconds since 1970-01-01T00:00:00Z.
pub type Micros = i64;

/// Why a timestamp could not be read; carries the text so the dead letter says what it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unrecognised timestamp {text:?}: {why}")]
pub struct TimestampError {
    /// The timestamp as the record wrote it.
    pub text: String,
    /// What the parser expected and did not find.
    pub why: &'static str,
}

/// Parses any timestamp form Azure is known to write; a missing offset means UTC.
pub fn parse(text: &str) -> Result<Micros, TimestampError> {
    let err = |why| TimestampError {
        text: text.to_owned(),
        why,
    };
    let t = text.trim().as_bytes();
    if t.len() >= 10 && t[4] == b'-' {
        parse_iso(t).map_err(err)
    } else if t.contains(&b'/') {
        parse_us(t).map_err(err)
    } else {
        Err(err("neither RFC 3339 nor M/D/YYYY h:mm:ss AM"))
    }
}

/// A cursor over ASCII digits and separators; the parsers are small state machines on it.
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// Reads between `min` and `max` digits.
    fn digits(&mut self, min: usize, max: usize) -> Result<(u32, usize), &'static str> {
        let start = self.i;
        let mut v: u32 = 0;
        while self.i - start < max {
            match self.peek() {
                Some(c @ b'0'..=b'9') => {
                    v = v * 10 + u32::from(c - b'0');
                    self.i += 1;
                }
                _ => break,
            }
        }
        let n = self.i - start;
        if n < min {
            Err("expected digits")
        } else {
            Ok((v, n))
        }
    }

    /// Reads a fraction of a second after the dot, returning microseconds (truncated).
    fn fraction(&mut self) -> Result<u32, &'static str> {
        let start = self.i;
        let mut micros: u32 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            if self.i - start < 6 {
                micros = micros * 10 + u32::from(c - b'0');
            }
            self.i += 1;
        }
        let n = self.i - start;
        if n == 0 {
            return Err("empty fraction");
        }
        for _ in n..6 {
            micros *= 10;
        }
        Ok(micros)
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
    }

    fn done(&self) -> bool {
        self.i == self.b.len()
    }
}

fn parse_iso(b: &[u8]) -> Result<Micros, &'static str> {
    let mut c = Cursor { b, i: 0 };
    let (y, _) = c.digits(4, 4)?;
    if !c.eat(b'-') {
        return Err("expected '-'");
    }
    let (mo, _) = c.digits(2, 2)?;
    if !c.eat(b'-') {
        return Err("expected '-'");
    }
    let (d, _) = c.digits(2, 2)?;
    if !(c.eat(b'T') || c.eat(b't') || c.eat(b' ')) {
        return Err("expected 'T' between date and time");
    }
    let (h, _) = c.digits(2, 2)?;
    if !c.eat(b':') {
        return Err("expected ':'");
    }
    let (mi, _) = c.digits(2, 2)?;
    let mut s = 0;
    let mut frac = 0;
    if c.eat(b':') {
        s = c.digits(2, 2)?.0;
        if c.eat(b'.') || c.eat(b',') {
            frac = c.fraction()?;
        }
    }
    let offset_secs = parse_offset(&mut c)?;
    if !c.done() {
        return Err("unexpected text after the time");
    }
    to_micros(y, mo, d, h, mi, s, frac, offset_secs)
}

fn parse_offset(c: &mut Cursor) -> Result<i64, &'static str> {
    let sign = match c.peek() {
        None => return Ok(0),
        Some(b'Z' | b'z') => {
            c.i += 1;
            return Ok(0);
        }
        Some(b'+') => 1,
        Some(b'-') => -1,
        Some(_) => return Err("expected 'Z' or an offset"),
    };
    c.i += 1;
    let (oh, _) = c.digits(2, 2)?;
    c.eat(b':');
    let om = if c.done() { 0 } else { c.digits(2, 2)?.0 };
    if oh > 23 || om > 59 {
        return Err("offset out of range");
    }
    Ok(sign * (i64::from(oh) * 3600 + i64::from(om) * 60))
}

fn parse_us(b: &[u8]) -> Result<Micros, &'static str> {
    let mut c = Cursor { b, i: 0 };
    let (mo, _) = c.digits(1, 2)?;
    if !c.eat(b'/') {
        return Err("expected '/'");
    }
    let (d, _) = c.digits(1, 2)?;
    if !c.eat(b'/') {
        return Err("expected '/'");
    }
    let (y, _) = c.digits(4, 4)?;
    c.skip_spaces();
    let (mut h, _) = c.digits(1, 2)?;
    if !c.eat(b':') {
        return Err("expected ':'");
    }
    let (mi, _) = c.digits(2, 2)?;
    let mut s = 0;
    let mut frac = 0;
    if c.eat(b':') {
        s = c.digits(2, 2)?.0;
        if c.eat(b'.') {
            frac = c.fraction()?;
        }
    }
    c.skip_spaces();
    let rest = &b[c.i..];
    if rest.eq_ignore_ascii_case(b"AM") || rest.eq_ignore_ascii_case(b"PM") {
        if !(1..=12).contains(&h) {
            return Err("hour out of range for a 12-hour clock");
        }
        let pm = rest.eq_ignore_ascii_case(b"PM");
        h = match (h, pm) {
            (12, false) => 0,
            (12, true) => 12,
            (h, false) => h,
            (h, true) => h + 12,
        };
        c.i = b.len();
    }
    let offset_secs = parse_offset(&mut c)?;
    if !c.done() {
        return Err("unexpected text after the time");
    }
    to_micros(y, mo, d, h, mi, s, frac, offset_secs)
}

#[allow(clippy::too_many_arguments)]
fn to_micros(
    y: u32,
    mo: u32,
    d: u32,
    h: u32,
    mi: u32,
    s: u32,
    frac: u32,
    offset_secs: i64,
) -> Result<Micros, &'static str> {
    if y == 0 {
        return Err("year out of range");
    }
    let date = NaiveDate::from_ymd_opt(y as i32, mo, d).ok_or("no such date")?;
    // A leap second (":60") is folded into the last microsecond of its minute, as Spark does.
    let (s, frac) = if s == 60 { (59, 999_999) } else { (s, frac) };
    let dt = date
        .and_hms_micro_opt(h, mi, s, frac)
        .ok_or("time out of range")?;
    let local = dt.and_utc().timestamp_micros();
    Ok(local - offset_secs * 1_000_000)
}

/// Writes an instant as `2025-12-12T14:56:31.000000Z`: the one form every output carries.
pub fn format(micros: Micros) -> String {
    let mut s = String::with_capacity(27);
    write_rfc3339(micros, &mut s).expect("writing to a String cannot fail");
    s
}

fn write_rfc3339(micros: Micros, out: &mut impl fmt::Write) -> fmt::Result {
    match DateTime::from_timestamp_micros(micros) {
        Some(dt) if (0..=9999).contains(&dt.year()) => write!(
            out,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            dt.year(),
            dt.month(),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second(),
            dt.nanosecond() / 1000
        ),
        // Unreachable from `parse`, which only accepts years 1 to 9999.
        _ => write!(out, "{micros}"),
    }
}

/// Serializes a `Micros` field as RFC 3339 UTC with six fractional digits.
pub fn serialize<S: Serializer>(micros: &Micros, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&Display(*micros))
}

/// Serializes an optional `Micros` field; `None` is `null`.
pub fn serialize_opt<S: Serializer>(micros: &Option<Micros>, s: S) -> Result<S::Ok, S::Error> {
    match micros {
        Some(m) => serialize(m, s),
        None => s.serialize_none(),
    }
}

/// Deserializes what `serialize` wrote (and any other form `parse` accepts).
pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Micros, D::Error> {
    let text: std::borrow::Cow<'de, str> = serde::Deserialize::deserialize(d)?;
    parse(&text).map_err(serde::de::Error::custom)
}

/// Deserializes an optional timestamp; `null` is `None`.
pub fn deserialize_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Micros>, D::Error> {
    let text: Option<std::borrow::Cow<'de, str>> = serde::Deserialize::deserialize(d)?;
    text.map(|t| parse(&t).map_err(serde::de::Error::custom))
        .transpose()
}

/// Formats an instant lazily, for logs and CSV without an intermediate `String`.
#[derive(Debug, Clone, Copy)]
pub struct Display(pub Micros);

impl fmt::Display for Display {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_rfc3339(self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "2025-12-12T14:56:31.000000Z";

    fn p(s: &str) -> String {
        format(parse(s).unwrap_or_else(|e| panic!("{e}")))
    }

    #[test]
    fn every_fraction_length_from_zero_to_nine() {
        assert_eq!(p("2025-12-12T14:56:31Z"), BASE);
        assert_eq!(p("2025-12-12T14:56:31.1Z"), "2025-12-12T14:56:31.100000Z");
        assert_eq!(p("2025-12-12T14:56:31.12Z"), "2025-12-12T14:56:31.120000Z");
        assert_eq!(
            p("2025-12-12T14:56:31.123456Z"),
            "2025-12-12T14:56:31.123456Z"
        );
        assert_eq!(
            p("2025-12-12T14:56:31.1234567Z"),
            "2025-12-12T14:56:31.123456Z"
        );
        assert_eq!(
            p("2025-12-12T14:56:31.999999999Z"),
            "2025-12-12T14:56:31.999999Z",
            "digits past the microsecond are truncated, not rounded"
        );
    }

    #[test]
    fn offsets_are_normalised_to_utc() {
        assert_eq!(p("2025-12-12T14:56:31+00:00"), BASE);
        assert_eq!(p("2025-12-12T20:26:31+05:30"), BASE);
        assert_eq!(p("2025-12-12T06:56:31-08:00"), BASE);
        assert_eq!(p("2025-12-12T06:56:31-0800"), BASE);
        assert_eq!(
            p("2025-12-13T00:56:31.5+10:00"),
            "2025-12-12T14:56:31.500000Z"
        );
        assert_eq!(
            p("2026-01-01T01:30:00+02:00"),
            "2025-12-31T23:30:00.000000Z",
            "an offset can move the instant into the previous year"
        );
    }

    #[test]
    fn missing_offset_means_utc_and_space_separator_is_accepted() {
        assert_eq!(p("2025-12-12T14:56:31"), BASE);
        assert_eq!(p("2025-12-12 14:56:31.000"), BASE);
    }

    #[test]
    fn us_form_with_twelve_hour_clock() {
        assert_eq!(p("12/12/2025 2:56:31 PM"), BASE);
        assert_eq!(p("11/14/2025 1:48:53 AM"), "2025-11-14T01:48:53.000000Z");
        assert_eq!(p("1/2/2025 12:00:00 AM"), "2025-01-02T00:00:00.000000Z");
        assert_eq!(p("1/2/2025 12:00:00 PM"), "2025-01-02T12:00:00.000000Z");
        assert_eq!(p("1/2/2025 13:05:00"), "2025-01-02T13:05:00.000000Z");
    }

    #[test]
    fn garbage_is_an_error_that_names_the_text() {
        for bad in [
            "",
            "yesterday",
            "2025-13-01T00:00:00Z",
            "2025-02-30T00:00:00Z",
            "2025-12-12T25:00:00Z",
            "2025-12-12T14:56:31.Z",
            "2025-12-12T14:56:31Zjunk",
            "13/40/2025 1:00:00 PM",
            "12/12/2025 0:00:00 PM",
        ] {
            let e = parse(bad).expect_err(bad);
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn leap_second_stays_in_its_minute() {
        assert_eq!(p("2016-12-31T23:59:60Z"), "2016-12-31T23:59:59.999999Z");
    }
}
