//! `/vswitch/attachments`: CNI attachments (see `crate::cni::api`), used by `vswitch-cni`.
//!
//! | method | path | answer |
//! |---|---|---|
//! | POST | `/vswitch/attachments` (AttachRequest) | 201 Attachment |
//! | GET | `/vswitch/attachments[?network=N]` | 200 [Attachment] |
//! | GET | `/vswitch/attachments/{container}/{ifname}` | 200 Attachment, 404 |
//! | DELETE | `/vswitch/attachments/{container}/{ifname}[?network=N]` | 204, 404 when there was none (on N) |
//! | POST | `/vswitch/attachments/gc` (GcRequest) | 200 GcResponse |

use super::{blocking, decode_body, empty, ok_json, Resp};
use crate::cni::api::{AttachRequest, GcRequest, GcResponse};
use crate::daemon::Daemon;
use crate::model::Error;
use hyper::body::Bytes;
use hyper::Method;
use std::collections::HashMap;
use std::sync::Arc;

/// `rest`: the path segments after `vswitch/attachments`.
pub(super) async fn route(
    d: &Arc<Daemon>,
    method: &Method,
    rest: &[&str],
    q: &HashMap<String, String>,
    content_type: Option<&str>,
    body: &Bytes,
) -> Result<Resp, Error> {
    match (method.clone(), rest) {
        (Method::POST, []) => {
            let req: AttachRequest = decode_body(content_type, body)?;
            let a = blocking(d, move |d| d.cni_attach(req)).await?;
            Ok(ok_json(201, &a))
        }
        (Method::GET, []) => {
            let n = q.get("network").cloned();
            let v = blocking(d, move |d| d.cni_attachments(n.as_deref())).await?;
            Ok(ok_json(200, &v))
        }
        (Method::POST, ["gc"]) => {
            let req: GcRequest = decode_body(content_type, body)?;
            let removed = blocking(d, move |d| d.cni_gc(req)).await?;
            Ok(ok_json(200, &GcResponse { removed }))
        }
        (Method::GET, [c, i]) => {
            let (c, i) = (c.to_string(), i.to_string());
            let a = blocking(d, move |d| d.cni_attachment(&c, &i)).await?;
            Ok(ok_json(200, &a))
        }
        (Method::DELETE, [c, i]) => {
            let (c, i) = (c.to_string(), i.to_string());
            let n = q.get("network").cloned();
            let found = blocking(d, move |d| d.cni_detach(&c, &i, n.as_deref())).await?;
            if found {
                Ok(empty(204))
            } else {
                Err(Error::NotFound("no such attachment".into()))
            }
        }
        _ => Err(Error::NotFound("page not found".into())),
    }
}
