-- GET /forward-auth as a reverse proxy asks it: the original request in X-Forwarded-*
-- headers, the caller's credential as the browser or script sent it.
-- BENCH_CREDENTIAL_HEADER is "Cookie" or "Authorization"; BENCH_CREDENTIAL its value.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
wrk.method = "GET"
wrk.path = "/forward-auth"
wrk.headers["X-Forwarded-Method"] = "GET"
wrk.headers["X-Forwarded-Proto"] = "http"
wrk.headers["X-Forwarded-Host"] = "app.bench.test"
wrk.headers["X-Forwarded-Uri"] = "/reports/2026/q1?page=2"
wrk.headers["X-Forwarded-For"] = "192.0.2.10"
wrk.headers[os.getenv("BENCH_CREDENTIAL_HEADER")] = os.getenv("BENCH_CREDENTIAL")
