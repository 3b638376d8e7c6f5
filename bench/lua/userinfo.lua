-- GET /userinfo with a bearer access token from an authorization-code flow.
-- BENCH_TOKEN is the access token (the driver signs in through the login page to get it).
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
wrk.method = "GET"
wrk.path = "/userinfo"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
