//! Reading an answer's body from GitHub with a ceiling: a peer (GitHub, or whatever answers at
//! `GITHUB_API_URL`) cannot make a run hold more than [`MAX_ANSWER_BYTES`] of one answer in memory.
//! A declared `Content-Length` over the limit is refused before anything is read; otherwise the body
//! is read frame by frame and refused as soon as it passes the limit, the rest left unread.

use http_body_util::BodyExt;

/// The most bytes of one GitHub API answer a run reads: 32 MiB, far above GitHub's largest page
/// (100 repositories of a listing are a few hundred KiB).
pub const MAX_ANSWER_BYTES: u64 = 32 * 1024 * 1024;

/// Why a body could not be read whole.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the answer is larger than {limit} bytes, the most a run reads of one answer")]
    TooLarge { limit: u64 },
    #[error("the answer broke off: {0}")]
    Transport(String),
}

/// The whole body of `response` if it is at most `limit` bytes long.
pub async fn read_bounded<B>(response: http::Response<B>, limit: u64) -> Result<Vec<u8>, BodyError>
where
    B: http_body::Body + Unpin,
    B::Data: bytes::Buf,
    B::Error: std::fmt::Display,
{
    let declared = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(BodyError::TooLarge { limit });
    }
    let mut body = response.into_body();
    let mut read = Vec::with_capacity(declared.unwrap_or(0) as usize);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| BodyError::Transport(first_line(&err.to_string())))?;
        let Ok(mut data) = frame.into_data() else {
            // Trailers carry no body bytes.
            continue;
        };
        let chunk_length = bytes::Buf::remaining(&data) as u64;
        if read.len() as u64 + chunk_length > limit {
            return Err(BodyError::TooLarge { limit });
        }
        while bytes::Buf::has_remaining(&data) {
            let chunk = bytes::Buf::chunk(&data);
            read.extend_from_slice(chunk);
            let advanced = chunk.len();
            bytes::Buf::advance(&mut data, advanced);
        }
    }
    Ok(read)
}

/// The first line of an error's text (octocrab's errors can go on with request details).
fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use bytes::Bytes;
    use futures_util::StreamExt;
    use http_body_util::{Full, StreamBody};

    /// A body of 64 frames of 1 MiB, and how many of them were read so far.
    fn large_body() -> (
        impl http_body::Body<Data = Bytes, Error = std::convert::Infallible> + Unpin,
        Arc<AtomicUsize>,
    ) {
        let megabyte = Bytes::from(vec![b'x'; 1024 * 1024]);
        let pulled = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&pulled);
        let frames = futures_util::stream::repeat_with(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(http_body::Frame::data(megabyte.clone()))
        })
        .take(64);
        (StreamBody::new(frames), pulled)
    }

    #[tokio::test]
    async fn a_long_body_is_refused_at_the_limit_and_the_rest_left_unread() {
        let (body, pulled) = large_body();
        let refused = read_bounded(http::Response::new(body), 3 * 1024 * 1024)
            .await
            .unwrap_err();
        assert!(
            matches!(refused, BodyError::TooLarge { limit } if limit == 3 * 1024 * 1024),
            "{refused}"
        );
        assert_eq!(
            pulled.load(Ordering::SeqCst),
            4,
            "read up to the frame past the limit"
        );
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_unread() {
        let (body, pulled) = large_body();
        let response = http::Response::builder()
            .header(http::header::CONTENT_LENGTH, (64u64 << 20).to_string())
            .body(body)
            .unwrap();
        let refused = read_bounded(response, 1024).await.unwrap_err();
        assert!(
            matches!(refused, BodyError::TooLarge { limit: 1024 }),
            "{refused}"
        );
        assert_eq!(pulled.load(Ordering::SeqCst), 0, "nothing read");
    }

    #[tokio::test]
    async fn a_body_at_the_limit_is_read_whole() {
        let response = http::Response::new(Full::new(Bytes::from(vec![b'y'; 1024])));
        assert_eq!(read_bounded(response, 1024).await.unwrap().len(), 1024);
        let response = http::Response::new(Full::new(Bytes::from(vec![b'y'; 1025])));
        assert!(read_bounded(response, 1024).await.is_err());
    }
}
