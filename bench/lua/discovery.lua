-- GET /.well-known/openid-configuration
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
wrk.method = "GET"
wrk.path = "/.well-known/openid-configuration"
