//! The answer to a plain-text gRPC client on a TLS port: HTTP/2's own refusal, a GOAWAY with
//! INADEQUATE_SECURITY and a sentence, which the client's HTTP/2 library shows in its error;
//! rather than a closed connection, which reads as a node down.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What the GOAWAY says.
const WHY: &[u8] = b"this gRPC port speaks TLS only (mTLS): give --tls-cert, --tls-key and --tls-ca";
/// How long the client has to read the refusal before the connection closes.
const LINGER: Duration = Duration::from_secs(2);

/// Sends the refusal and closes, once the client has read it or `LINGER` passed.
pub(crate) async fn answer(mut stream: TcpStream) {
    let mut preface = [0; 64];
    // What the client sent first is read, so that closing does not reset the connection
    // (and discard the refusal) over unread bytes.
    let _ = tokio::time::timeout(LINGER, stream.read(&mut preface)).await;
    let _ = stream.write_all(&frames()).await;
    let _ = stream.shutdown().await;
    let _ = tokio::time::timeout(LINGER, async { while matches!(stream.read(&mut preface).await, Ok(n) if n > 0) {} }).await;
}

/// An empty SETTINGS (the server's preface), then the GOAWAY.
fn frames() -> Vec<u8> {
    const SETTINGS: u8 = 0x4;
    const GOAWAY: u8 = 0x7;
    const INADEQUATE_SECURITY: u32 = 0xc;
    let mut out = frame_header(0, SETTINGS);
    let payload_len = 8 + WHY.len();
    out.extend(frame_header(payload_len, GOAWAY));
    out.extend(0u32.to_be_bytes()); // the last stream id: none was processed
    out.extend(INADEQUATE_SECURITY.to_be_bytes());
    out.extend(WHY);
    out
}

/// A frame's header on stream 0, with no flags.
fn frame_header(payload_len: usize, kind: u8) -> Vec<u8> {
    let len = (payload_len as u32).to_be_bytes();
    vec![len[1], len[2], len[3], kind, 0, 0, 0, 0, 0]
}

#[cfg(test)]
mod tests {
    /// The refusal is an empty SETTINGS, then a GOAWAY on stream 0 whose length counts its
    /// last stream id, its code (INADEQUATE_SECURITY) and the sentence.
    #[test]
    fn the_frames_are_settings_then_goaway() {
        let frames = super::frames();
        assert_eq!(&frames[..9], &[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        let goaway = &frames[9..];
        let len = u32::from_be_bytes([0, goaway[0], goaway[1], goaway[2]]) as usize;
        assert_eq!(len, goaway.len() - 9);
        assert_eq!(&goaway[3..9], &[7, 0, 0, 0, 0, 0]);
        assert_eq!(&goaway[9..17], &[0, 0, 0, 0, 0, 0, 0, 0xc]);
        assert_eq!(&goaway[17..], super::WHY);
    }
}
