-- GET a page of users from the admin API (list, or a username prefix search).
-- BENCH_PATH is the path with its query; BENCH_TOKEN an access token with admin:users:read.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
wrk.method = "GET"
wrk.path = os.getenv("BENCH_PATH")
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
