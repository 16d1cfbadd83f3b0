//! The JSON envelope around a job body in an SQS message.
//!
//! SQS FIFO queues reject per-message `DelaySeconds`, so a delayed job carries its
//! release time as `notBefore` (Unix milliseconds) and the receiver hides it until then.

use serde_json::{Map, Value};

const BODY: &str = "body";
const NOT_BEFORE: &str = "notBefore";

/// A decoded message body.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Envelope {
    pub body: Value,
    /// Unix time in milliseconds before which the job must not be delivered.
    pub not_before: Option<i64>,
}

impl Envelope {
    /// Encodes the envelope as message text.
    pub fn encode(self) -> String {
        let mut object = Map::new();
        object.insert(BODY.to_owned(), self.body);
        if let Some(not_before) = self.not_before {
            object.insert(NOT_BEFORE.to_owned(), Value::from(not_before));
        }
        Value::Object(object).to_string()
    }

    /// Decodes message text. Anything other than a JSON object with a `body` and an
    /// optional integer `notBefore` returns a description of the problem.
    pub fn decode(text: &str) -> Result<Envelope, String> {
        let value: Value = serde_json::from_str(text).map_err(|error| format!("the message is not JSON: {error}"))?;
        let Value::Object(mut object) = value else {
            return Err("the message is not a JSON object".to_owned());
        };
        let body = object.remove(BODY).ok_or("the message has no body field")?;
        let not_before = match object.remove(NOT_BEFORE) {
            None | Some(Value::Null) => None,
            Some(value) => Some(value.as_i64().ok_or("the notBefore field is not an integer")?),
        };
        Ok(Envelope { body, not_before })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn immediate_job_has_no_not_before() {
        let text = Envelope {
            body: json!({"id": 1}),
            not_before: None,
        }
        .encode();
        assert_eq!(text, r#"{"body":{"id":1}}"#);
    }

    #[test]
    fn envelope_round_trips() {
        let envelope = Envelope {
            body: json!({"big": 9007199254740993u64, "s": "é"}),
            not_before: Some(1_700_000_000_123),
        };
        assert_eq!(Envelope::decode(&envelope.clone().encode()), Ok(envelope));
    }

    #[test]
    fn null_body_is_kept() {
        let decoded = Envelope::decode(r#"{"body":null}"#).expect("decode");
        assert_eq!(decoded.body, Value::Null);
        assert_eq!(decoded.not_before, None);
    }

    #[test]
    fn malformed_messages_are_rejected() {
        for text in [
            "",
            "not json",
            "[1]",
            r#"{"notBefore":1}"#,
            r#"{"body":1,"notBefore":"soon"}"#,
        ] {
            assert!(Envelope::decode(text).is_err(), "{text:?}");
        }
    }
}
