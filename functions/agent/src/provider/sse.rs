//! A Server-Sent Events reader: bytes in, `(event, data)` messages out, as the
//! `text/event-stream` format defines them. Lines end in LF, CRLF or CR, and a blank line
//! ends a message. `data:` lines are joined with LF, and comments and unknown fields are
//! ignored.

/// One message of an event stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseMessage {
    /// The `event:` field, empty when absent.
    pub event: String,
    pub data: String,
}

/// Maximum length of a line, and of a message's data, so that a server that never ends a
/// line or a message cannot exhaust memory.
const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// Splits a byte stream into messages; feed it chunks as they arrive.
#[derive(Default)]
pub struct SseReader {
    line: Vec<u8>,
    /// The previous chunk ended with CR, so a leading LF belongs to that line ending.
    after_cr: bool,
    event: String,
    data: Option<String>,
}

impl SseReader {
    /// Takes a chunk and returns the messages it completes.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<SseMessage>, String> {
        let mut messages = Vec::new();
        for &byte in chunk {
            if std::mem::take(&mut self.after_cr) && byte == b'\n' {
                continue;
            }
            match byte {
                b'\n' | b'\r' => {
                    self.after_cr = byte == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(message) = self.line_done(&line) {
                        messages.push(message);
                    }
                    if self.data.as_ref().is_some_and(|data| data.len() > MAX_LINE_BYTES) {
                        return Err(format!("a message of the event stream is over {MAX_LINE_BYTES} bytes"));
                    }
                }
                _ => {
                    if self.line.len() >= MAX_LINE_BYTES {
                        return Err(format!("a line of the event stream is over {MAX_LINE_BYTES} bytes"));
                    }
                    self.line.push(byte);
                }
            }
        }
        Ok(messages)
    }

    /// Ends the stream: a message not closed by a blank line is still delivered, as
    /// servers that close right after the last `data:` line expect.
    pub fn finish(&mut self) -> Option<SseMessage> {
        let line = std::mem::take(&mut self.line);
        if !line.is_empty() {
            self.line_done(&line);
        }
        self.dispatch()
    }

    fn line_done(&mut self, line: &[u8]) -> Option<SseMessage> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line[0] == b':' {
            return None;
        }
        let text = String::from_utf8_lossy(line);
        let (field, value) = match text.find(':') {
            Some(colon) => {
                let value = &text[colon + 1..];
                (&text[..colon], value.strip_prefix(' ').unwrap_or(value))
            }
            None => (text.as_ref(), ""),
        };
        match field {
            "event" => self.event = value.to_owned(),
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseMessage> {
        let event = std::mem::take(&mut self.event);
        let data = self.data.take()?;
        Some(SseMessage { event, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(chunks: &[&[u8]]) -> Vec<SseMessage> {
        let mut reader = SseReader::default();
        let mut out = Vec::new();
        for chunk in chunks {
            out.extend(reader.feed(chunk).expect("valid stream"));
        }
        out.extend(reader.finish());
        out
    }

    #[test]
    fn reader_handles_any_split() {
        let text = b"event: ping\r\ndata: {}\r\n\r\n: comment\n\ndata: a\ndata:b\r\rdata: last";
        let expected = vec![
            SseMessage {
                event: "ping".into(),
                data: "{}".into(),
            },
            SseMessage {
                event: String::new(),
                data: "a\nb".into(),
            },
            SseMessage {
                event: String::new(),
                data: "last".into(),
            },
        ];
        assert_eq!(read_all(&[text]), expected);
        for split in 1..text.len() {
            let (a, b) = text.split_at(split);
            assert_eq!(read_all(&[a, b]), expected, "split at {split}");
        }
    }

    #[test]
    fn reader_skips_dataless_messages() {
        assert!(read_all(&[b"event: x\n\nid: 3\n\n"]).is_empty());
    }
}
