//! `protect` (F-20) with silent refresh (F-24) and the CSRF check (F-23).

use std::fmt;

use http::HeaderMap;
use http::header::{AUTHORIZATION, HeaderValue, USER_AGENT};

use super::cookies::{CookieWriter, check_origin, is_state_changing, read_cookie};
use super::{Api, Head};
use crate::config::CookieConfig;
use crate::error::{Error, ErrorCode, Result};
use crate::service::{ClientInfo, RefreshInput, Renewal};
use crate::tokens::AuthUser;

/// Where the access token of a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenSource {
    /// `Authorization: Bearer`.
    Bearer,
    /// The access cookie, or the refresh cookie of a silent refresh.
    Cookie,
}

/// The outcome of [`Api::authenticate`]: the user, and the `Set-Cookie`
/// values of a silent refresh that the adapter must add to the response
/// (whatever its status). `Debug` does not show the cookies.
#[derive(Clone)]
pub struct Authenticated {
    /// The authenticated user.
    pub user: AuthUser,
    /// Where the token came from.
    pub source: TokenSource,
    /// `Set-Cookie` values to add to the response; empty unless the pair
    /// was rotated by a silent refresh.
    pub set_cookies: Vec<HeaderValue>,
}

impl fmt::Debug for Authenticated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticated")
            .field("user", &self.user)
            .field("source", &self.source)
            .field("refreshed", &!self.set_cookies.is_empty())
            .finish()
    }
}

/// The bearer token, `None` without an `Authorization: Bearer` header.
///
/// Every protected request comes through here, so the header is read as
/// bytes in one pass over the token: the scheme is the text before the
/// first space (any case), the token the rest without surrounding
/// whitespace. A `Bearer` header without a token or whose token is not
/// text, or a header of another scheme that is not visible ASCII, is
/// `TOKEN_INVALID`; any other scheme is `None`.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let invalid = || Error::new(ErrorCode::TokenInvalid);
    let bytes = value.as_bytes().trim_ascii();
    let is_bearer = bytes.len() >= 6
        && bytes[..6].eq_ignore_ascii_case(b"bearer")
        && bytes.get(6).is_none_or(|&b| b == b' ');
    if !is_bearer {
        // Another scheme: the header must still be text.
        value.to_str().map_err(|_| invalid())?;
        return Ok(None);
    }
    let token = bytes[6..].trim_ascii();
    if token.is_empty() {
        return Err(invalid());
    }
    // Text is all the parser needs to know: a token with a character a
    // token cannot hold fails verification with the same TOKEN_INVALID.
    std::str::from_utf8(token).map(Some).map_err(|_| invalid())
}

/// The access token of a request, as `protect` reads it (F-20):
/// `Authorization: Bearer`, else the access cookie when `cookies` puts the
/// access token in a cookie. `Ok(None)` when there is neither (the caller
/// answers `UNAUTHORIZED`). Adapters backing `protect` with another
/// [`AccessVerifier`](crate::AccessVerifier) read the token with this too.
///
/// # Errors
/// `TOKEN_INVALID` for an `Authorization: Bearer` header that is not text
/// or carries no token.
pub fn access_token<'h>(
    headers: &'h HeaderMap,
    cookies: &CookieConfig,
) -> Result<Option<(&'h str, TokenSource)>> {
    if let Some(token) = bearer(headers)? {
        return Ok(Some((token, TokenSource::Bearer)));
    }
    Ok(cookies
        .access_in_cookie()
        .then(|| read_cookie(headers, &cookies.access_cookie_name()))
        .flatten()
        .map(|token| (token, TokenSource::Cookie)))
}

/// `protect` for any [`AccessVerifier`](crate::AccessVerifier) (client
/// mode, F-16): read the token as [`access_token`] does, check the origin
/// of a cookie-authenticated write (CSRF), and verify. A missing token is
/// `UNAUTHORIZED`. With `optional`, a missing or bad token yields `None`;
/// `SERVICE_UNAVAILABLE` and unexpected failures are still errors. Both
/// adapters' `protect_with_verifier` call this.
///
/// # Errors
/// `UNAUTHORIZED`, `FORBIDDEN` (CSRF), and the verifier's errors.
pub async fn verify_request(
    verifier: &dyn crate::AccessVerifier,
    cookies: &CookieConfig,
    head: Head<'_>,
    optional: bool,
) -> Result<Option<AuthUser>> {
    let outcome = async {
        let (token, source) = access_token(head.headers, cookies)?
            .ok_or_else(|| Error::new(ErrorCode::Unauthorized))?;
        if source == TokenSource::Cookie {
            check_origin(cookies, head.method, head.uri, head.headers)?;
        }
        verifier.verify_access(token).await
    }
    .await;
    match outcome {
        Ok(user) => Ok(Some(user)),
        Err(err) if optional && !err.is(&ErrorCode::ServiceUnavailable) && !err.is_unhandled() => {
            Ok(None)
        }
        Err(err) => Err(err),
    }
}

impl Api {
    /// What is known of the client: `User-Agent` and the address (the peer,
    /// or `X-Forwarded-For` through a trusted proxy).
    pub fn client_info(&self, head: Head<'_>) -> ClientInfo {
        let user_agent = head
            .headers
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let ip = head.client_ip(self.sentri.config().trusted_proxies());
        ClientInfo { user_agent, ip }
    }

    pub(crate) fn cookie_writer(&self) -> CookieWriter<'_> {
        CookieWriter::new(self.sentri.config().cookies(), &self.prefix)
    }

    /// `protect` (F-20): the access token from `Authorization: Bearer`,
    /// else the access cookie, verified by [`crate::Sentri::verify_access`].
    ///
    /// A state-changing request authenticated by a cookie must pass
    /// [`super::check_origin`]. With the access cookie configured, an
    /// expired access token (or none, its cookie having expired) and a
    /// valid refresh cookie rotate the pair: the new cookies are in
    /// [`Authenticated::set_cookies`] (F-24).
    ///
    /// # Errors
    /// `UNAUTHORIZED` (no token), `TOKEN_INVALID`, `TOKEN_EXPIRED`,
    /// `FORBIDDEN` (cross-origin cookie request), `SERVICE_UNAVAILABLE`.
    pub async fn authenticate(&self, head: Head<'_>) -> Result<Authenticated> {
        let cookies = self.sentri.config().cookies();
        let (token, source) = match access_token(head.headers, cookies)? {
            Some(found) => found,
            None => {
                let err = Error::new(ErrorCode::Unauthorized);
                return Box::pin(self.silent_refresh(head, err)).await;
            }
        };
        if source == TokenSource::Cookie {
            check_origin(cookies, head.method, head.uri, head.headers)?;
        }
        match self.sentri.verify_access(token).await {
            Ok(user) => Ok(Authenticated {
                user,
                source,
                set_cookies: Vec::new(),
            }),
            // Boxed: the rare path's state (a whole refresh) would
            // otherwise make every protected request's future that large.
            Err(err) if err.is(&ErrorCode::TokenExpired) => {
                Box::pin(self.silent_refresh(head, err)).await
            }
            Err(err) => Err(err),
        }
    }

    /// [`Api::authenticate`] when the answer needs no waiting (see
    /// [`Sentri::try_verify_access`](crate::Sentri::try_verify_access)):
    /// a bearer or cookie token that verifies, or fails for good. `None`
    /// when the store must be asked, or when a missing or expired token
    /// might be renewed by a silent refresh: call `authenticate` then.
    ///
    /// Adapters try this first, so that the common protected request runs
    /// without allocating a future; the answer is the one `authenticate`
    /// would give.
    pub fn try_authenticate(&self, head: Head<'_>) -> Option<Result<Authenticated>> {
        let cookies = self.sentri.config().cookies();
        let (token, source) = match access_token(head.headers, cookies) {
            Ok(Some(found)) => found,
            Ok(None) => return None,
            Err(err) => return Some(Err(err)),
        };
        if source == TokenSource::Cookie
            && let Err(err) = check_origin(cookies, head.method, head.uri, head.headers)
        {
            return Some(Err(err));
        }
        match self.sentri.try_verify_access(token)? {
            Ok(user) => Some(Ok(Authenticated {
                user,
                source,
                set_cookies: Vec::new(),
            })),
            Err(err) if err.is(&ErrorCode::TokenExpired) => None,
            Err(err) => Some(Err(err)),
        }
    }

    /// [`Api::authenticate_optional`] when the answer needs no waiting, as
    /// [`Api::try_authenticate`].
    pub fn try_authenticate_optional(
        &self,
        head: Head<'_>,
    ) -> Option<Result<Option<Authenticated>>> {
        Some(optional(self.try_authenticate(head)?))
    }

    /// What a `protect` layer runs: [`Api::authenticate_optional`] when the
    /// layer is `optional`, else [`Api::authenticate`] (`Some` user).
    ///
    /// # Errors
    /// As those two.
    pub async fn protect(&self, head: Head<'_>, optional: bool) -> Result<Option<Authenticated>> {
        if optional {
            self.authenticate_optional(head).await
        } else {
            self.authenticate(head).await.map(Some)
        }
    }

    /// [`Api::protect`] when the answer needs no waiting, as
    /// [`Api::try_authenticate`]; `None`: call `protect`. Adapters try
    /// this first on every request.
    pub fn try_protect(
        &self,
        head: Head<'_>,
        optional: bool,
    ) -> Option<Result<Option<Authenticated>>> {
        if optional {
            self.try_authenticate_optional(head)
        } else {
            self.try_authenticate(head).map(|r| r.map(Some))
        }
    }

    /// Rotate with the refresh cookie when the access cookie is configured
    /// and the refresh cookie present; otherwise fail with `original`.
    async fn silent_refresh(&self, head: Head<'_>, original: Error) -> Result<Authenticated> {
        let cookies = self.sentri.config().cookies();
        if !cookies.access_in_cookie() {
            return Err(original);
        }
        let Some(refresh) = read_cookie(head.headers, &cookies.refresh_cookie_name()) else {
            return Err(original);
        };
        if is_state_changing(head.method) {
            check_origin(cookies, head.method, head.uri, head.headers)?;
        }
        let out = match self
            .sentri
            .silent_refresh(RefreshInput {
                refresh_token: refresh.to_owned(),
                client: self.client_info(head),
            })
            .await
        {
            Ok(Renewal::Rotated(out)) => out,
            // A parallel request rotated the pair a moment ago; its
            // response carries the new cookies.
            Ok(Renewal::Grace(user)) => {
                return Ok(Authenticated {
                    user,
                    source: TokenSource::Cookie,
                    set_cookies: Vec::new(),
                });
            }
            Err(err) if err.is(&ErrorCode::ServiceUnavailable) => return Err(err),
            Err(err) => {
                tracing::debug!(code = %err.code(), "silent refresh refused");
                return Err(original);
            }
        };
        let user = self.sentri.verify_access(&out.tokens.access_token).await?;
        let set_cookies = self
            .cookie_writer()
            .token_cookies(&out.tokens, self.sentri.clock().now());
        Ok(Authenticated {
            user,
            source: TokenSource::Cookie,
            set_cookies,
        })
    }

    /// The optional variant of `protect` (F-20): `Ok(None)` instead of a
    /// missing, bad or expired token or a refused cross-origin cookie.
    ///
    /// # Errors
    /// Only `SERVICE_UNAVAILABLE` (a store is down: never a wrong answer).
    pub async fn authenticate_optional(&self, head: Head<'_>) -> Result<Option<Authenticated>> {
        optional(self.authenticate(head).await)
    }
}

/// The outcome of an optional `protect`: no user instead of a refusal,
/// but an outage or an unexpected failure is still an error.
fn optional(outcome: Result<Authenticated>) -> Result<Option<Authenticated>> {
    match outcome {
        Ok(a) => Ok(Some(a)),
        Err(err) if err.is(&ErrorCode::ServiceUnavailable) || err.is_unhandled() => Err(err),
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(value: &[u8]) -> std::result::Result<Option<String>, String> {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_bytes(value).unwrap());
        bearer(&headers)
            .map(|t| t.map(str::to_owned))
            .map_err(|e| e.code().as_str().to_owned())
    }

    #[test]
    fn the_bearer_scheme_is_read_in_any_case_with_any_padding() {
        for value in [
            &b"Bearer abc.def.ghi"[..],
            b"bearer abc.def.ghi",
            b"BEARER abc.def.ghi",
            b"  Bearer   abc.def.ghi  ",
            b"Bearer abc.def.ghi\t",
        ] {
            assert_eq!(read(value), Ok(Some("abc.def.ghi".to_owned())), "{value:?}");
        }
    }

    #[test]
    fn other_schemes_are_not_a_bearer_token() {
        for value in [
            &b"Basic dXNlcjpwYXNz"[..],
            b"Bearerabc",
            b"Bearer\tabc",
            b"Token abc",
        ] {
            assert_eq!(read(value), Ok(None), "{value:?}");
        }
        assert_eq!(bearer(&HeaderMap::new()).unwrap(), None);
    }

    #[test]
    fn a_bearer_header_without_a_usable_token_is_token_invalid() {
        for value in [
            &b"Bearer"[..],
            b"Bearer   ",
            b"Bearer abc\xffdef",
            // Not text at all, whatever the scheme.
            b"Basic \xff",
        ] {
            assert_eq!(read(value), Err("TOKEN_INVALID".to_owned()), "{value:?}");
        }
    }
}
