//! One request shape (what a wrk script sends), replayed by each worker on its own
//! keep-alive connection. A response counts only with the expected status and, when asked,
//! a body containing the expected text (e.g. `"active":true` from introspection).

use reqwest::{Method, StatusCode};

use crate::browser::http_client;
use crate::pace::Worker;

#[derive(Clone, Debug)]
pub struct Shape {
    pub method: Method,
    pub url: url::Url,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    pub expect_status: StatusCode,
    pub expect_body: Option<String>,
}

/// Parses `Name: value`.
pub fn header(raw: &str) -> Result<(String, String), String> {
    let (name, value) = raw.split_once(':').ok_or_else(|| format!("a header is `Name: value`, not `{raw}`"))?;
    Ok((name.trim().to_owned(), value.trim().to_owned()))
}

pub struct Replay {
    http: reqwest::Client,
    request: reqwest::Request,
    shape: Shape,
}

impl Replay {
    pub fn new(shape: &Shape) -> Result<Self, String> {
        let http = http_client()?;
        let mut builder = http.request(shape.method.clone(), shape.url.clone());
        for (name, value) in &shape.headers {
            builder = builder.header(name, value);
        }
        if let Some(body) = &shape.body {
            builder = builder.body(body.clone());
        }
        let request = builder.build().map_err(|e| format!("cannot build the request: {e}"))?;
        Ok(Self { http, request, shape: shape.clone() })
    }
}

impl Worker for Replay {
    async fn run(&mut self) -> Result<(), String> {
        let request = self.request.try_clone().ok_or("the request body cannot be replayed")?;
        let response = self.http.execute(request).await.map_err(|e| format!("{}: {e}", self.shape.url.path()))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| format!("{}: {e}", self.shape.url.path()))?;
        if status != self.shape.expect_status {
            return Err(format!("{} answered {status}", self.shape.url.path()));
        }
        if let Some(needle) = &self.shape.expect_body
            && !body.windows(needle.len()).any(|w| w == needle.as_bytes())
        {
            return Err(format!("{}: the response lacks {needle}", self.shape.url.path()));
        }
        Ok(())
    }
}
