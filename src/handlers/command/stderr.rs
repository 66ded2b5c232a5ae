//! A command's stderr, read line by line: lines of the form `progress: 40 resizing` are progress
//! reports, handed to the job ([`JobContext::progress`](crate::handler::JobContext::progress));
//! everything else is kept (the end of it) for the error message of a failed attempt. Progress
//! lines are left out of that tail, so a chatty program's reports do not push out the real
//! error.

use std::sync::{Arc, Mutex};

use super::process::{keep_stderr, Capture};
use crate::handler::ProgressSink;

/// What a progress line starts with, at the very start of the line.
const PREFIX: &[u8] = b"progress:";
/// A longer line is not taken for a progress line (so a long line is never held in memory).
const MAX_LINE: usize = 1024;

/// Splits stderr into lines as it arrives, on the pipe's reader thread.
pub struct StderrLines {
    capture: Arc<Mutex<Capture>>,
    sink: Option<Arc<ProgressSink>>,
    /// The current line, while it may still be a progress line.
    line: Vec<u8>,
    /// The current line is not one: its bytes go straight to the tail up to its end.
    passthrough: bool,
}

impl StderrLines {
    pub fn new(capture: Arc<Mutex<Capture>>, sink: Option<Arc<ProgressSink>>) -> StderrLines {
        StderrLines {
            capture,
            sink,
            line: Vec::new(),
            passthrough: false,
        }
    }

    /// Takes the next bytes read from the pipe.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let (part, eol) = match data.iter().position(|&b| b == b'\n') {
                Some(i) => (&data[..=i], true),
                None => (data, false),
            };
            data = &data[part.len()..];
            if self.passthrough {
                self.keep(part);
            } else {
                self.line.extend_from_slice(part);
                let n = self.line.len().min(PREFIX.len());
                if self.line[..n] != PREFIX[..n] || self.line.len() > MAX_LINE {
                    let line = std::mem::take(&mut self.line);
                    self.keep(&line);
                    self.passthrough = true;
                } else if eol {
                    let line = std::mem::take(&mut self.line);
                    match parse(&line) {
                        Some((percent, message)) => {
                            if let Some(sink) = &self.sink {
                                sink.report(percent, &message);
                            }
                        }
                        None => self.keep(&line),
                    }
                }
            }
            if eol {
                self.passthrough = false;
            }
        }
    }

    /// The pipe closed: an unfinished last line is kept as it is (only complete lines report).
    pub fn end(&mut self) {
        let line = std::mem::take(&mut self.line);
        if !line.is_empty() {
            self.keep(&line);
        }
    }

    fn keep(&self, bytes: &[u8]) {
        keep_stderr(
            &mut self.capture.lock().unwrap_or_else(|e| e.into_inner()),
            bytes,
        );
    }
}

/// `progress: <percent>[%] [message]`, the percent a number (`40`, `12.5`) rounded and clamped
/// to 0-100; None for anything else.
fn parse(line: &[u8]) -> Option<(u8, String)> {
    let text = String::from_utf8_lossy(line.strip_prefix(PREFIX)?);
    let text = text.trim();
    let (number, message) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    let percent: f64 = number.strip_suffix('%').unwrap_or(number).parse().ok()?;
    if !percent.is_finite() {
        return None;
    }
    Some((
        percent.round().clamp(0.0, 100.0) as u8,
        message.trim().to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_are_parsed() {
        assert_eq!(
            parse(b"progress: 40 resizing\n"),
            Some((40, "resizing".into()))
        );
        assert_eq!(parse(b"progress:12.6%\r\n"), Some((13, String::new())));
        assert_eq!(parse(b"progress: 250 a  b \n"), Some((100, "a  b".into())));
        assert_eq!(parse(b"progress: -3 x"), Some((0, "x".into())));
        assert_eq!(parse(b"progress: lots\n"), None);
        assert_eq!(parse(b"progress: NaN\n"), None);
        assert_eq!(parse(b"progress:\n"), None);
        assert_eq!(parse(b" progress: 1\n"), None);
    }

    #[test]
    fn progress_lines_stay_out_of_the_tail_in_any_chunking() {
        let text =
            b"start\nprogress: 10 one\nprogress: bad\nprogress: 20 two\nerr: the real reason";
        let want = "start\nprogress: bad\nerr: the real reason";
        for size in [1, 2, 5, 9, 10, 64] {
            let cap = Arc::new(Mutex::new(Capture::default()));
            let got = Arc::new(Mutex::new(Vec::new()));
            let seen = got.clone();
            let sink = ProgressSink::new(move |p, m| {
                seen.lock().unwrap().push((p, m.to_string()));
                Ok(true)
            });
            let mut lines = StderrLines::new(cap.clone(), Some(sink));
            for chunk in text.chunks(size) {
                lines.feed(chunk);
            }
            lines.end();
            let tail = String::from_utf8(cap.lock().unwrap().stderr.clone()).unwrap();
            assert_eq!(tail, want, "chunks of {size}");
            // The second report falls in the first one's rate-limit interval: held back.
            assert_eq!(
                *got.lock().unwrap(),
                [(10, "one".to_string())],
                "chunks of {size}"
            );
        }
    }

    #[test]
    fn a_long_line_is_not_held() {
        let cap = Arc::new(Mutex::new(Capture::default()));
        let mut lines = StderrLines::new(cap.clone(), None);
        let long = format!("progress: 5 {}", "x".repeat(2000));
        lines.feed(long.as_bytes());
        assert!(lines.line.is_empty());
        lines.feed(b"\nprogress: 7\n");
        assert_eq!(
            cap.lock().unwrap().stderr,
            long.as_bytes()
                .iter()
                .chain(b"\n")
                .copied()
                .collect::<Vec<u8>>()
        );
    }
}
