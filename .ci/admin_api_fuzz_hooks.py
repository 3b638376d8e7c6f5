"""Schemathesis hooks for .ci/admin_api_fuzz.sh: what a schema cannot say about the admin API.

Three inputs are valid or not depending on what the server holds, not on their shape, so a
schema-valid value that schemathesis makes up is refused on merit (and the
positive_data_acceptance check would call that a bug). Only requests generated as valid
("positive") are changed here; invalid ones are sent as generated, and every check runs on
every request.

- `If-Match` (optimistic concurrency): a made-up ETag is well-formed but stale, and the API
  rightly answers 412. A valid request whose If-Match is one strong tag gets the ETag just
  read instead: the hook reads the resource (GET on the same path), so updates really run.
  Any other value is sent as generated, so a document that allows what the API refuses
  still fails.
- `Idempotency-Key`: two different requests that happen to get the same made-up key are a
  key reused for another body, rightly 422. A valid request whose key is well-formed and
  was already sent gets a fresh key; any other key is sent as generated (so a malformed
  key that the document allows still fails).
- `cursor` (paging): only a `next_cursor` the API gave out is valid. A valid request keeps
  a cursor only if some response gave it out; a made-up one is dropped.
- `POST /clients`: a client's settings must fit together (a redirect URI for the
  authorization_code grant, https redirect URIs, scopes that exist, keys for
  private_key_jwt...), rules across fields and stored records that a schema cannot state,
  so almost every made-up client breaks one and is refused (422, documented). Every other
  valid request to create a client has the settings that depend on such rules replaced by
  ones that fit (one https redirect URI, the `openid` scope, default authentication), so
  the success path (201, the answer's schema, the secret) is tested too; the others are
  sent as generated, so each rule's refusal is tested as well.
- `POST /apply`: the schema gives the document's top level (six lists); the entries of each
  list are the `latchkey apply` document's, described in docs/admin-api.md and read as the
  CLI reads them, so an entry made up from "any object" is malformed (400, naming its
  path). A valid request gets its lists emptied, so the success path (200, the answer's
  schema, dry run and prune) is tested; invalid bodies are sent as generated. The entries
  themselves are tested in crates/latchkey-service/tests/apply.rs and
  crates/latchkey-server/tests/admin_api_clients.rs.

- `POST /signing-keys/{kid}/retire`: retiring the key that signed the run's own token
  (after a rotation made it a retired key) would answer every later request 401, and the
  rest of the run would test nothing. That one kid is replaced by one that names no key
  (404), in every request; every other kid is sent as generated. The script also checks the
  token still works after the run.

Needs ADMIN_API_FUZZ_BASE (the API's base URL) and ADMIN_API_FUZZ_AUTHORIZATION (the
Authorization header value) in the environment.
"""

import base64
import json
import os
import re
import threading
import uuid

import requests
import schemathesis
from schemathesis import GenerationMode

BASE = os.environ["ADMIN_API_FUZZ_BASE"].rstrip("/")
AUTHORIZATION = os.environ["ADMIN_API_FUZZ_AUTHORIZATION"]
_session = requests.Session()
_cursors_given_out: set[str] = set()
_keys_sent: set[str] = set()
_lock = threading.Lock()
# A well-formed Idempotency-Key, as the API takes it (surrounding quotes left out).
_KEY = re.compile(r"[!-~]{1,255}")
# One strong entity tag, as the API takes it in If-Match.
_STRONG_TAG = re.compile(r'\s*"[^"]*"\s*')


def _token_kid() -> str | None:
    token = AUTHORIZATION.split(" ", 1)[-1]
    header = token.split(".", 1)[0]
    try:
        return json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))).get("kid")
    except ValueError:
        return None


# The key that signed the run's token: never retired by the run.
_RUN_KID = _token_kid()


def _positive(case) -> bool:
    meta = getattr(case, "meta", None)
    return meta is not None and meta.generation.mode == GenerationMode.POSITIVE


def _header(headers, name):
    for key in headers or {}:
        if key.lower() == name.lower():
            return key
    return None


def _current_etag(case):
    path = case.formatted_path if hasattr(case, "formatted_path") else case.path.format(**(case.path_parameters or {}))
    try:
        response = _session.get(BASE + path, headers={"Authorization": AUTHORIZATION}, timeout=30)
    except requests.RequestException:
        return None
    return response.headers.get("ETag") if response.status_code == 200 else None


@schemathesis.hook
def before_call(context, case, kwargs):
    headers = case.headers or {}
    positive = _positive(case)
    if case.path == "/signing-keys/{kid}/retire" and _RUN_KID and (case.path_parameters or {}).get("kid") == _RUN_KID:
        case.path_parameters["kid"] = "not-the-runs-own-key"

    key = _header(headers, "Idempotency-Key")
    if key is not None:
        # The API ignores surrounding quotes (a structured-field string or a bare token).
        value = str(headers[key]).strip('"')
        with _lock:
            if value not in _keys_sent:
                _keys_sent.add(value)
            elif positive and _KEY.fullmatch(value):
                headers[key] = uuid.uuid4().hex
    if not positive:
        return
    key = _header(headers, "If-Match")
    if key is not None and case.path_parameters and _STRONG_TAG.fullmatch(str(headers[key])):
        etag = _current_etag(case)
        if etag is not None:
            headers[key] = etag
    query = case.query
    if query and "cursor" in query and query["cursor"] not in _cursors_given_out:
        del query["cursor"]
    if case.method.upper() == "POST" and case.path == "/apply" and isinstance(case.body, dict):
        for name in list(case.body):
            case.body[name] = []
    if case.method.upper() == "POST" and case.path == "/clients" and isinstance(case.body, dict):
        with _lock:
            global _clients_generated
            _clients_generated += 1
            # The first of each two: a phase that makes a single valid create makes it fit.
            fit = _clients_generated % 2 == 1
        if fit:
            _fit_client(case.body)
            with _lock:
                _fitted.add(id(case))


_clients_generated = 0
# Creates given settings that fit (and a fresh id): each must be made (201).
_fitted: set[int] = set()
# The settings whose validity depends on rules across fields or on stored records.
_RULED = (
    "redirect_uris", "post_logout_redirect_uris", "grant_types", "scopes", "token_endpoint_auth_method",
    "jwks", "jwks_uri", "allow_insecure_no_pkce", "allow_legacy_assertion_audience", "admin_client",
    "id_token_signed_response_alg", "session", "access",
)


def _fit_client(body):
    for name in _RULED:
        body.pop(name, None)
    # A fresh id: the stateful phase feeds ids it saw made, so every fitted create of a
    # phase could be a 409, and that phase would have no valid create accepted.
    body.pop("client_id", None)
    body["redirect_uris"] = ["https://app.example/callback"]
    body["scopes"] = ["openid"]


@schemathesis.hook
def after_call(context, case, response):
    with _lock:
        fitted = id(case) in _fitted
        _fitted.discard(id(case))
    if fitted and response.status_code != 201:
        raise AssertionError(
            f"POST /clients with settings that fit was answered {response.status_code}: {response.text[:500]}"
        )
    if response.status_code != 200:
        return
    try:
        body = json.loads(response.content)
    except ValueError:
        return
    if isinstance(body, dict) and isinstance(body.get("next_cursor"), str):
        _cursors_given_out.add(body["next_cursor"])
