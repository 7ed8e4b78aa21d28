//! The native record: the output record as JSON, Azure's field names.

use super::Encoder;
use crate::record::{SCHEMA_VERSION, SignIn};

/// mfagap's own JSON record, with the headers the archiver and SIEM filters read.
#[derive(Debug, Clone, Copy, Default)]
pub struct Native;

impl Encoder for Native {
    fn name(&self) -> &'static str {
        "native"
    }

    fn write_payload(&self, s: &SignIn<'_>, out: &mut Vec<u8>) {
        s.write_json(out);
    }

    fn headers(&self, s: &SignIn<'_>) -> Vec<(&'static str, String)> {
        let mut h = super::common_headers(s, super::Format::Native);
        h.push(("schemaVersion", SCHEMA_VERSION.to_owned()));
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::Format;

    #[test]
    fn the_native_record_is_the_json_of_the_sign_in_with_its_headers() {
        let body = br#"{"records":[{"category":"SignInLogs","tenantId":"t1","resultType":"0","properties":{"id":"i1","createdDateTime":"2025-12-12T14:56:31Z","userId":"u1","status":{"errorCode":0},"authenticationRequirement":"singleFactorAuthentication"}}]}"#;
        let mut got = Vec::new();
        crate::Processor::default().process(
            body,
            &Default::default(),
            0,
            &mut crate::Stats::default(),
            &mut |o| {
                if let crate::Output::SignIn(s) = o {
                    got.push(Format::Native.encoder(Default::default()).encode(&s));
                }
            },
        );
        assert_eq!(got.len(), 1);
        let e = &got[0];
        assert_eq!(e.key.as_deref(), Some(&b"u1"[..]));
        let v: serde_json::Value = serde_json::from_slice(&e.payload).unwrap();
        assert_eq!(v["id"], "i1");
        assert_eq!(v["reason"], "single_factor");
        assert_eq!(
            e.headers,
            vec![
                ("category", "SignInLogs".to_owned()),
                ("tenantId", "t1".to_owned()),
                ("reason", "single_factor".to_owned()),
                ("format", "native".to_owned()),
                ("schemaVersion", SCHEMA_VERSION.to_owned()),
            ]
        );
    }
}
