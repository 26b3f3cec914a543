//! Naming the message-size limit in its status.
//!
//! tonic rejects an oversized request message while decoding it, before any
//! handler runs, as `OUT_OF_RANGE` "decoded message length too large". Every
//! other limit is a `RESOURCE_EXHAUSTED` status naming its setting, so this
//! layer rewrites that one status (it arrives in the response headers of a
//! trailers-only response) to match. `AppendStream` sees the error inside
//! its handler and rewrites it there (`append_stream::inbound_error`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::HeaderValue;

/// Tower layer installing [`MessageLimit`].
#[derive(Clone, Copy, Debug)]
pub struct MessageLimitLayer {
    max_message_bytes: usize,
}

impl MessageLimitLayer {
    /// For a server whose decoding limit is `max_message_bytes`.
    pub fn new(max_message_bytes: usize) -> MessageLimitLayer {
        MessageLimitLayer { max_message_bytes }
    }
}

impl<S> tower::Layer<S> for MessageLimitLayer {
    type Service = MessageLimit<S>;

    fn layer(&self, inner: S) -> MessageLimit<S> {
        MessageLimit {
            inner,
            max_message_bytes: self.max_message_bytes,
        }
    }
}

/// See the module docs.
#[derive(Clone, Debug)]
pub struct MessageLimit<S> {
    inner: S,
    max_message_bytes: usize,
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for MessageLimit<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let limit = self.max_message_bytes;
        let future = self.inner.call(request);
        Box::pin(async move {
            let mut response = future.await?;
            rewrite(response.headers_mut(), limit);
            Ok(response)
        })
    }
}

/// `grpc-status` of `RESOURCE_EXHAUSTED`.
const RESOURCE_EXHAUSTED: &str = "8";
/// `grpc-status` of `OUT_OF_RANGE`.
const OUT_OF_RANGE: &str = "11";

fn rewrite(headers: &mut http::HeaderMap, limit: usize) {
    let is_size_error = headers.get("grpc-status").is_some_and(|v| v == OUT_OF_RANGE)
        && headers
            .get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|m| m.contains("message%20length%20too%20large") || m.contains("message length too large"));
    if !is_size_error {
        return;
    }
    // Printable ASCII without '%' needs no percent-encoding in grpc-message.
    let message = format!("request message exceeds max_message_bytes ({limit})");
    if let Ok(value) = HeaderValue::from_str(&message) {
        headers.insert("grpc-status", HeaderValue::from_static(RESOURCE_EXHAUSTED));
        headers.insert("grpc-message", value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_only_the_size_error() {
        let mut headers = http::HeaderMap::new();
        headers.insert("grpc-status", HeaderValue::from_static("11"));
        headers.insert(
            "grpc-message",
            HeaderValue::from_static("Error,%20decoded%20message%20length%20too%20large:%20found%2010%20bytes"),
        );
        rewrite(&mut headers, 4);
        assert_eq!(headers["grpc-status"], "8");
        assert_eq!(headers["grpc-message"], "request message exceeds max_message_bytes (4)");

        let mut other = http::HeaderMap::new();
        other.insert("grpc-status", HeaderValue::from_static("11"));
        other.insert("grpc-message", HeaderValue::from_static("seq%205%20is%20beyond"));
        rewrite(&mut other, 4);
        assert_eq!(other["grpc-status"], "11");
    }
}
