//! A minimal RESP2 client over a std `TcpStream`, enough for test set-up and inspection
//! (`INFO`, `CLUSTER …`, `SCRIPT FLUSH`, `DBSIZE`). It keeps the kit free of the `redis`
//! crate so that the code under test and the tools that inspect it do not share a client.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Sends one command and returns its reply rendered as text: `+OK`, `:3`, a bulk string's
/// contents, `-ERR …`, or the elements of an array joined by newlines.
pub(crate) fn command(port: u16, args: &[&str]) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut request = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        request.extend_from_slice(arg.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    stream.write_all(&request)?;
    let mut reader = BufReader::new(stream);
    read_reply(&mut reader)
}

fn read_reply(reader: &mut impl BufRead) -> std::io::Result<String> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    let line = line.trim_end_matches(['\r', '\n']);
    let (kind, rest) = line.split_at(1);
    match kind {
        "+" | "-" | ":" => Ok(line.to_owned()),
        "$" => {
            let len: i64 = rest.parse().map_err(invalid)?;
            if len < 0 {
                return Ok("(nil)".to_owned());
            }
            let mut body = vec![0; usize::try_from(len).map_err(invalid)? + 2];
            reader.read_exact(&mut body)?;
            body.truncate(body.len() - 2);
            Ok(String::from_utf8_lossy(&body).into_owned())
        }
        "*" => {
            let len: i64 = rest.parse().map_err(invalid)?;
            let mut items = Vec::new();
            for _ in 0..len.max(0) {
                items.push(read_reply(reader)?);
            }
            Ok(items.join("\n"))
        }
        _ => Err(invalid(format!("unexpected reply line {line:?}"))),
    }
}

fn invalid(e: impl ToString) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
}
