-- POST /introspect with one valid JWT access token, client_secret_basic.
-- BENCH_AUTH is the base64 of "client_id:client_secret"; BENCH_TOKEN the access token.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
wrk.method = "POST"
wrk.path = "/introspect"
wrk.body = "token=" .. os.getenv("BENCH_TOKEN")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. os.getenv("BENCH_AUTH")
