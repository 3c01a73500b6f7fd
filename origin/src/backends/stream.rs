//! Splitting a response body into lines, for NDJSON (Ollama) and SSE (OpenAI) alike.
//! Network chunks do not align with lines, so bytes are carried over until a newline arrives.

use super::BackendError;
use bytes::Bytes;
use futures::{Stream, StreamExt};

/// Longest line accepted; a server sending more without a newline is broken.
const MAX_LINE: usize = 1 << 20;

/// Turns a byte stream into complete lines (without the newline; a trailing `\r` removed).
pub fn lines<S>(url: String, body: S) -> impl Stream<Item = Result<String, BackendError>> + Send
where
    S: Stream<Item = reqwest::Result<Bytes>> + Send + Unpin + 'static,
{
    futures::stream::unfold(
        (body, Vec::<u8>::new(), url, false),
        |(mut body, mut buf, url, mut ended)| async move {
            loop {
                if let Some(pos) = buf.iter().position(|&b| b == b'\n') {
                    let mut line: Vec<u8> = buf.drain(..=pos).collect();
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    let item = String::from_utf8(line).map_err(|_| BackendError::Protocol {
                        url: url.clone(),
                        message: "response line is not UTF-8".into(),
                    });
                    return Some((item, (body, buf, url, ended)));
                }
                if ended {
                    if buf.is_empty() {
                        return None;
                    }
                    let rest = std::mem::take(&mut buf);
                    let item = String::from_utf8(rest).map_err(|_| BackendError::Protocol {
                        url: url.clone(),
                        message: "response line is not UTF-8".into(),
                    });
                    return Some((item, (body, buf, url, ended)));
                }
                match body.next().await {
                    Some(Ok(chunk)) => {
                        buf.extend_from_slice(&chunk);
                        if buf.len() > MAX_LINE {
                            let e = BackendError::Protocol {
                                url: url.clone(),
                                message: "response line too long".into(),
                            };
                            return Some((Err(e), (body, Vec::new(), url, true)));
                        }
                    }
                    Some(Err(e)) => {
                        let e = BackendError::Interrupted {
                            url: url.clone(),
                            message: e.to_string(),
                        };
                        return Some((Err(e), (body, Vec::new(), url, true)));
                    }
                    None => ended = true,
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_across_chunk_boundaries() {
        let chunks: Vec<reqwest::Result<Bytes>> = vec![
            Ok(Bytes::from("{\"a\":")),
            Ok(Bytes::from("1}\n{\"b\"")),
            Ok(Bytes::from(":2}\r\n\nlast")),
        ];
        let out: Vec<String> = lines("u".into(), futures::stream::iter(chunks))
            .map(|l| l.unwrap())
            .collect()
            .await;
        assert_eq!(out, ["{\"a\":1}", "{\"b\":2}", "", "last"]);
    }
}
