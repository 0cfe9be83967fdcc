//! Writes a flowgate-made [`HttpResponse`] to the client through pingora.

use crate::http::HttpResponse;
use pingora::http::ResponseHeader;
use pingora::prelude::Session;
use pingora::Result;

/// Sends status, headers and body, closing the response.
pub(crate) async fn write(session: &mut Session, r: HttpResponse) -> Result<()> {
    let mut h = ResponseHeader::build(r.status, Some(r.headers.len() + 1))?;
    for (name, value) in r.headers {
        h.append_header(name, value)?;
    }
    h.insert_header("content-length", r.body.len().to_string())?;
    session.write_response_header(Box::new(h), false).await?;
    session.write_response_body(Some(r.body), true).await?;
    Ok(())
}
