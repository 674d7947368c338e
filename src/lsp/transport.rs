//! The stdio transport, replacing lsp-server's: its reader stops for good at the
//! first malformed frame, which takes the server down with it. Here a frame that
//! is not JSON is answered with a parse error (id null), a JSON value that is not
//! a message with an invalid-request error, a broken header is skipped, and
//! reading goes on. Messages reach the server through an unbounded in-memory
//! connection (`Connection::memory`), so the server sees bursts as they queue.

use lsp_server::{Connection, Message};
use std::io::{self, BufRead, Write};
use std::thread::JoinHandle;

pub struct IoThreads {
    reader: JoinHandle<()>,
    writer: JoinHandle<io::Result<()>>,
}

impl IoThreads {
    /// Waits for the writer to flush everything the server sent. The reader is left
    /// alone: it may sit in a blocking read of a stdin the client keeps open.
    pub fn join(self) -> io::Result<()> {
        drop(self.reader);
        self.writer.join().unwrap_or_else(|_| Err(io::Error::other("writer thread panicked")))
    }
}

/// A connection over stdin and stdout.
pub fn stdio() -> (Connection, IoThreads) {
    let (server, client) = Connection::memory();
    let Connection { sender: to_server, receiver: from_server } = client;
    let writer = std::thread::Builder::new()
        .name("nixl-lsp-writer".into())
        .spawn(move || {
            for msg in from_server {
                let mut out = io::stdout().lock();
                msg.write(&mut out)?;
            }
            Ok(())
        })
        .expect("spawn writer");
    let reader = std::thread::Builder::new()
        .name("nixl-lsp-reader".into())
        .spawn(move || {
            let stdin = io::stdin();
            let mut input = stdin.lock();
            read_loop(&mut input, |m| to_server.send(m).is_ok(), |reply| write_raw(&mut io::stdout().lock(), &reply));
        })
        .expect("spawn reader");
    (server, IoThreads { reader, writer })
}

/// Reads frames until end of input or `exit`; `deliver` returns false once the server is gone.
pub fn read_loop(input: &mut dyn BufRead, mut deliver: impl FnMut(Message) -> bool, mut reply: impl FnMut(String)) {
    loop {
        let body = match read_frame(input) {
            Ok(Some(body)) => body,
            Ok(None) => return,
            Err(Skip(why)) => {
                reply(error_reply(serde_json::Value::Null, -32700, &why));
                continue;
            }
        };
        let value: serde_json::Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                reply(error_reply(serde_json::Value::Null, -32700, &format!("malformed JSON: {e}")));
                continue;
            }
        };
        let id = value.get("id").cloned().unwrap_or(serde_json::Value::Null);
        // lsp-server would read `{"id": 7}` as a response to nothing; it is an invalid request.
        if value.get("method").is_none() && value.get("result").is_none() && value.get("error").is_none() {
            reply(error_reply(id, -32600, "a message needs a `method`, or a `result` or `error`"));
            continue;
        }
        match serde_json::from_value::<Message>(value) {
            Ok(msg) => {
                let exit = matches!(&msg, Message::Notification(n) if n.method == "exit");
                if !deliver(msg) || exit {
                    return;
                }
            }
            Err(e) => reply(error_reply(id, -32600, &format!("not a JSON-RPC message: {e}"))),
        }
    }
}

/// A frame that cannot be read; the reader has skipped past it.
struct Skip(String);

impl From<io::Error> for Skip {
    fn from(e: io::Error) -> Skip {
        Skip(e.to_string())
    }
}

/// One `Content-Length` frame's body. Ok(None) at the end of input.
fn read_frame(input: &mut dyn BufRead) -> Result<Option<Vec<u8>>, Skip> {
    let mut length = None;
    let mut bad = None;
    let mut line = String::new();
    loop {
        line.clear();
        if input.read_line(&mut line).map_err(|e| Skip(e.to_string()))? == 0 {
            return Ok(None);
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            if length.is_some() || bad.is_some() {
                break;
            }
            continue; // blank lines between frames
        }
        match l.split_once(':') {
            Some((name, value)) if name.trim().eq_ignore_ascii_case("content-length") => match value.trim().parse::<usize>() {
                Ok(n) => length = Some(n),
                Err(_) => bad = Some(format!("bad Content-Length header: {l:?}")),
            },
            Some(_) => {}
            None => bad = Some(format!("malformed header line: {l:?}")),
        }
    }
    if let Some(why) = bad {
        return Err(Skip(why));
    }
    let n = length.unwrap_or(0);
    if n > 64 * 1024 * 1024 {
        return Err(Skip(format!("frame of {n} bytes is over the 64 MiB limit")));
    }
    let mut body = vec![0; n];
    input.read_exact(&mut body).map_err(|e| Skip(e.to_string()))?;
    Ok(Some(body))
}

fn error_reply(id: serde_json::Value, code: i32, message: &str) -> String {
    serde_json::json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } }).to_string()
}

fn write_raw(out: &mut dyn Write, body: &str) {
    let _ = write!(out, "Content-Length: {}\r\n\r\n{body}", body.len());
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &str) -> String {
        format!("Content-Length: {}\r\n\r\n{body}", body.len())
    }

    #[test]
    fn malformed_frames_are_answered_and_reading_goes_on() {
        let input = [
            frame("{not json"),
            "Content-Length: abc\r\n\r\n".to_string(),
            frame(r#"{"jsonrpc":"2.0","id":7,"params":{}}"#),
            frame(r#"{"jsonrpc":"2.0","method":"initialized","params":{}}"#),
            frame(r#"{"jsonrpc":"2.0","method":"exit"}"#),
            frame(r#"{"jsonrpc":"2.0","method":"never-read"}"#),
        ]
        .concat();
        let mut got = vec![];
        let mut replies = vec![];
        read_loop(
            &mut input.as_bytes(),
            |m| {
                got.push(m);
                true
            },
            |r| replies.push(r),
        );
        let methods: Vec<String> = got
            .iter()
            .map(|m| match m {
                Message::Notification(n) => n.method.clone(),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(methods, ["initialized", "exit"]);
        assert_eq!(replies.len(), 3, "{replies:?}");
        assert!(replies[0].contains("-32700") && replies[0].contains("\"id\":null"), "{}", replies[0]);
        assert!(replies[1].contains("Content-Length"), "{}", replies[1]);
        assert!(replies[2].contains("-32600") && replies[2].contains("\"id\":7"), "{}", replies[2]);
    }
}
