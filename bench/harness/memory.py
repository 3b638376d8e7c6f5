"""Memory with many live sessions and keys: seeds browser sessions and API keys straight into
the database (as many as a busy deployment holds), gives each session its forward-auth
cookie, then drives forward-auth with every cookie and every key, so each node-side cache
(confirmed sessions, API keys, users) holds them all, and reads the server's RSS.

The cookies and keys are made here the way Latchkey makes them (the same HMAC key derived
from the master key, the same formats), which ties this module to those formats on
purpose: if they change, every request is refused and the run reports errors, not memory.
"""

import base64
import csv
import hashlib
import hmac
import os
import secrets
import sqlite3
import subprocess
import time
import zlib

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
TENANT = "default"


def token_hash_key(master_hex):
    """`MasterKey::derive("latchkey token hashing v1")`: the key of every TokenHasher."""
    return hmac.new(bytes.fromhex(master_hex), b"latchkey token hashing v1", hashlib.sha256).digest()


def token_hash(key, purpose, token):
    """`TokenHasher::hash`: hex of HMAC-SHA-256(purpose || 0 || token)."""
    return hmac.new(key, purpose.encode() + b"\0" + token.encode(), hashlib.sha256).hexdigest()


def base62(n):
    return "".join(secrets.choice(BASE62) for _ in range(n))


def api_key(key):
    """A key in Latchkey's format, and its stored columns."""
    key_id, secret = base62(12), base62(43)
    body = f"lk_{key_id}_{secret}"
    n = zlib.crc32(body.encode())
    digits = []
    for _ in range(6):
        digits.append(BASE62[n % 62])
        n //= 62
    return body + "".join(reversed(digits)), key_id, token_hash(key, "api_key", secret)


def forward_auth_cookie(key, sid, sub, expires_at):
    """`CookieClaims::seal` for a password sign-in (level 0, no passkey)."""
    payload = f"{TENANT}|{sid}|0|0|{expires_at}|{sub}"
    mac = token_hash(key, "forward_auth_cookie", payload)
    body = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
    return f"latchkey-forward-auth=v1.{body}.{mac}"


SESSION_COLUMNS = ["tenant_id", "id_hash", "sid", "sub", "auth_time", "amr", "acr", "created_at", "expires_at",
                   "last_active_at", "remember"]
KEY_COLUMNS = ["tenant_id", "key_id", "owner_sub", "name", "secret_hash", "scopes", "routes", "methods",
               "created_at"]


def seed(backend, db_url, master_hex, user_sub, bot_sub, sessions, keys, workdir):
    """Writes `sessions` sessions of the user and `keys` keys of the bot; returns the files
    holding their credentials, one per line (a Cookie value, an Authorization value)."""
    key = token_hash_key(master_hex)
    now = int(time.time())
    expires = now + 12 * 3600
    session_rows, cookies = [], []
    for _ in range(sessions):
        sid = secrets.token_hex(16)
        session_rows.append([TENANT, token_hash(key, "browser_session", secrets.token_hex(32)), sid, user_sub, now,
                             '["pwd"]', "urn:latchkey:acr:password", now, expires, now,
                             "false" if backend == "postgres" else 0])
        cookies.append(forward_auth_cookie(key, sid, user_sub, expires))
    key_rows, presented = [], []
    for i in range(keys):
        whole, key_id, secret_hash = api_key(key)
        key_rows.append([TENANT, key_id, bot_sub, f"memory-{i}", secret_hash, '["reports:read"]', "[]", "[]", now])
        presented.append("Bearer " + whole)
    if backend == "postgres":
        for table, columns, rows in (("browser_sessions", SESSION_COLUMNS, session_rows),
                                     ("api_keys", KEY_COLUMNS, key_rows)):
            path = os.path.join(workdir, f"{table}.csv")
            with open(path, "w", newline="") as f:
                csv.writer(f).writerows(rows)
            copy = f"\\copy {table} ({', '.join(columns)}) FROM '{path}' CSV"
            subprocess.run(["psql", db_url, "-v", "ON_ERROR_STOP=1", "-qc", copy], check=True, capture_output=True)
    else:
        db = sqlite3.connect(db_url.removeprefix("sqlite:"))
        with db:
            db.executemany(f"INSERT INTO browser_sessions ({', '.join(SESSION_COLUMNS)}) "
                           f"VALUES ({', '.join('?' * len(SESSION_COLUMNS))})", session_rows)
            db.executemany(f"INSERT INTO api_keys ({', '.join(KEY_COLUMNS)}) "
                           f"VALUES ({', '.join('?' * len(KEY_COLUMNS))})", key_rows)
        db.close()
    files = []
    for name, lines in (("cookies.txt", cookies), ("keys.txt", presented)):
        path = os.path.join(workdir, name)
        with open(path, "w") as f:
            f.writelines(line + "\n" for line in lines)
        files.append(path)
    return files
