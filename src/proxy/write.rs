//! Writes a flowgate-made [`HttpResponse`] (built by [`crate::http::respond`] or the UI) to
//! the client through pingora.

use crate::http::HttpResponse;
use pingora::http::ResponseHeader;
use pingora::prelude::Session;
use pingora::Result;

/// Sends status, headers and body, closing the response.
pub(crate) async fn response(session: &mut Session, r: HttpResponse) -> Result<()> {
    response_with(session, r, &[]).await
}

/// Like [`response`], with `extra` headers whose names are not static (identity headers on a
/// forward-auth answer). The whole header is built before anything is sent, so a bad name or
/// value is an error with nothing written (pingora then answers 502), never a partial 200.
pub(crate) async fn response_with(session: &mut Session, r: HttpResponse, extra: &[(String, String)]) -> Result<()> {
    let mut h = ResponseHeader::build(r.status, Some(r.headers.len() + extra.len() + 1))?;
    for (name, value) in r.headers {
        h.append_header(name, value)?;
    }
    for (name, value) in extra {
        h.insert_header(name.clone(), value.as_str())?;
    }
    h.insert_header("content-length", r.body.len().to_string())?;
    session.write_response_header(Box::new(h), false).await?;
    session.write_response_body(Some(r.body), true).await?;
    Ok(())
}
