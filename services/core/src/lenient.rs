//! Tolerant scalars for the fields Azure does not type consistently.
//!
//! The same field arrives as `0`, `"0"`, `""` or `null` depending on the category, the API
//! version and the export path. These types accept every form Azure is known to send and turn
//! anything else into a decode error (which makes the record a dead letter), so a surprise is
//! reported instead of silently misread.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

/// A string that borrows from the input unless the JSON string had escapes.
///
/// Numbers and booleans where text was expected are kept as their JSON text rather than
/// rejected: `riskLevel: 0` is still information worth keeping.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Text<'a>(pub Cow<'a, str>);

impl<'a> Text<'a> {
    /// The text, borrowed or owned alike.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Detaches the text from the input buffer.
    pub fn into_owned(self) -> Text<'static> {
        Text(Cow::Owned(self.0.into_owned()))
    }
}

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Text<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(if v { "true" } else { "false" })))
            }
        }
        d.deserialize_any(V)
    }
}

/// An integer code sent as a number or as a string of digits; `""` means absent.
///
/// `status.errorCode` and `resultType` are the two fields that decide whether a sign-in
/// succeeded, so a value that is neither is an error, never a guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// `null`, `""` or no field at all.
    Absent,
    /// The code, whichever way it was written.
    Value(i64),
}

impl Code {
    /// The code, if the record gave one.
    pub fn value(self) -> Option<i64> {
        match self {
            Code::Absent => None,
            Code::Value(v) => Some(v),
        }
    }
}

impl<'de> Deserialize<'de> for Code {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Code;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an integer code as a number or a string of digits")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Code, E> {
                Ok(Code::Value(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Code, E> {
                i64::try_from(v)
                    .map(Code::Value)
                    .map_err(|_| E::custom(format!("code {v} out of range")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Code, E> {
                if v.fract() == 0.0 && v.abs() < 9.0e15 {
                    Ok(Code::Value(v as i64))
                } else {
                    Err(E::custom(format!("code {v} is not an integer")))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Code, E> {
                let t = v.trim();
                if t.is_empty() {
                    return Ok(Code::Absent);
                }
                t.parse::<i64>()
                    .map(Code::Value)
                    .map_err(|_| E::custom(format!("code {v:?} is not an integer")))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Code, E> {
                Ok(Code::Absent)
            }
        }
        d.deserialize_any(V)
    }
}

/// A boolean sent as `true`, `"true"`, `"True"`, `1` or `"1"`; `""` and `null` mean unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flag(pub Option<bool>);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Flag;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a boolean")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Flag, E> {
                Ok(Flag(Some(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Flag, E> {
                match v {
                    0 => Ok(Flag(Some(false))),
                    1 => Ok(Flag(Some(true))),
                    _ => Err(E::custom(format!("{v} is not a boolean"))),
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Flag, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Flag, E> {
                let t = v.trim();
                if t.is_empty() {
                    Ok(Flag(None))
                } else if t.eq_ignore_ascii_case("true") || t == "1" {
                    Ok(Flag(Some(true)))
                } else if t.eq_ignore_ascii_case("false") || t == "0" {
                    Ok(Flag(Some(false)))
                } else {
                    Err(E::custom(format!("{v:?} is not a boolean")))
                }
            }
            fn visit_unit<E: de::Error>(self) -> Result<Flag, E> {
                Ok(Flag(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// A nested value that Log Analytics gives either as JSON or as a string that holds JSON.
///
/// A column of type `dynamic` is exported as the value itself; a column of type `string` that
/// Azure fills with JSON (most of `AADNonInteractiveUserSignInLogs`, `AuthenticationDetails`
/// everywhere) is exported as a JSON string whose text is the value. Both read the same. `null`,
/// `""` and a string holding `null` are absent; a string that does not hold JSON of the
/// expected shape is a decode error, so the record is a dead letter that says why.
///
/// Text inside a string column cannot borrow from the message (it had escapes in it), so it is
/// decoded from the string through a reader that never lends, and every string is owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Embedded<T>(pub Option<T>);

impl<T> Default for Embedded<T> {
    fn default() -> Self {
        Embedded(None)
    }
}

impl<T> Embedded<T> {
    /// The value, whichever way it was written.
    pub fn into_inner(self) -> Option<T> {
        self.0
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Embedded<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Embedded<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value or a string holding one")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                if v.trim().is_empty() {
                    return Ok(Embedded(None));
                }
                let mut json = serde_json::Deserializer::from_reader(v.as_bytes());
                Option::<T>::deserialize(&mut json)
                    .and_then(|value| json.end().map(|()| Embedded(value)))
                    .map_err(|e| {
                        E::custom(format!("a string column that holds no valid JSON: {e}"))
                    })
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Embedded(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Embedded(None))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|v| Embedded(Some(v)))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::SeqAccessDeserializer::new(seq))
                    .map(|v| Embedded(Some(v)))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Probe<'a> {
        #[serde(borrow)]
        t: Option<Text<'a>>,
        c: Option<Code>,
        f: Option<Flag>,
    }

    fn probe(json: &str) -> Result<Probe<'_>, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn text_borrows_unless_escaped() {
        let p = probe(r#"{"t":"plain","c":null,"f":null}"#).unwrap();
        assert!(matches!(p.t.unwrap().0, Cow::Borrowed("plain")));
        let p = probe(r#"{"t":"Zo\u00eb","c":null,"f":null}"#).unwrap();
        let t = p.t.unwrap();
        assert!(matches!(t.0, Cow::Owned(_)));
        assert_eq!(t.as_str(), "Zoë");
    }

    #[test]
    fn text_keeps_numbers_and_null_is_none() {
        let p = probe(r#"{"t":42,"c":null,"f":null}"#).unwrap();
        assert_eq!(p.t.unwrap().as_str(), "42");
        let p = probe(r#"{"t":null,"c":null,"f":null}"#).unwrap();
        assert!(p.t.is_none());
    }

    #[test]
    fn code_accepts_numbers_strings_and_empty() {
        for (json, want) in [
            ("0", Some(0)),
            ("\"0\"", Some(0)),
            ("\" 50126 \"", Some(50126)),
            ("50074", Some(50074)),
            ("\"\"", None),
            ("0.0", Some(0)),
        ] {
            let body = format!(r#"{{"t":null,"c":{json},"f":null}}"#);
            let p = probe(&body).unwrap();
            assert_eq!(p.c.unwrap().value(), want, "{json}");
        }
        assert!(
            probe(r#"{"t":null,"c":null,"f":null}"#)
                .unwrap()
                .c
                .is_none()
        );
    }

    #[test]
    fn code_rejects_words() {
        let err = probe(r#"{"t":null,"c":"Success","f":null}"#).err().unwrap();
        assert!(err.to_string().contains("not an integer"), "{err}");
        assert!(probe(r#"{"t":null,"c":[0],"f":null}"#).is_err());
    }

    #[test]
    fn flag_accepts_every_spelling() {
        for (json, want) in [
            ("true", Some(true)),
            ("\"True\"", Some(true)),
            ("\"false\"", Some(false)),
            ("1", Some(true)),
            ("0", Some(false)),
            ("\"\"", None),
        ] {
            let body = format!(r#"{{"t":null,"c":null,"f":{json}}}"#);
            let p = probe(&body).unwrap();
            assert_eq!(p.f.unwrap().0, want, "{json}");
        }
        assert!(probe(r#"{"t":null,"c":null,"f":"maybe"}"#).is_err());
    }
    #[derive(Deserialize)]
    struct Nested<'a> {
        #[serde(borrow)]
        e: Embedded<Vec<Text<'a>>>,
    }

    #[test]
    fn embedded_reads_json_and_json_in_a_string_alike() {
        let read = |json: &str| {
            serde_json::from_str::<Nested>(json)
                .map(|n| {
                    n.e.into_inner()
                        .map(|v| v.iter().map(|t| t.to_string()).collect::<Vec<_>>())
                })
                .map_err(|e| e.to_string())
        };
        let want = Ok(Some(vec!["a".to_owned(), "é".to_owned()]));
        assert_eq!(read(r#"{"e":["a","\u00e9"]}"#), want);
        assert_eq!(read(r#"{"e":"[\"a\",\"\\u00e9\"]"}"#), want);
        for absent in ["null", "\"\"", "\" \"", "\"null\""] {
            assert_eq!(read(&format!(r#"{{"e":{absent}}}"#)), Ok(None), "{absent}");
        }
        let err = read(r#"{"e":"[\"a\""}"#).unwrap_err();
        assert!(
            err.contains("a string column that holds no valid JSON"),
            "{err}"
        );
        assert!(
            read(r#"{"e":"[1] [2]"}"#).is_err(),
            "trailing text is not JSON"
        );
        assert!(read(r#"{"e":7}"#).is_err());
    }

    #[test]
    fn text_in_a_string_column_is_owned() {
        let n: Nested = serde_json::from_str(r#"{"e":"[\"plain\"]"}"#).unwrap();
        let v = n.e.into_inner().unwrap();
        assert!(matches!(v[0].0, Cow::Owned(_)));
        let n: Nested = serde_json::from_str(r#"{"e":["plain"]}"#).unwrap();
        assert!(matches!(
            n.e.into_inner().unwrap()[0].0,
            Cow::Borrowed("plain")
        ));
    }
}
