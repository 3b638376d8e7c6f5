-- GET /forward-auth cycling through many credentials (one per line of BENCH_CREDENTIALS_FILE,
-- sent as the BENCH_CREDENTIAL_HEADER header): each wrk thread walks the whole list from its
-- own offset, so a run of more requests than lines presents every one.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("offset", threads)
end

local creds = {}
for line in io.lines(os.getenv("BENCH_CREDENTIALS_FILE")) do
  creds[#creds + 1] = line
end
local header = os.getenv("BENCH_CREDENTIAL_HEADER")
local i = 0

function init(args)
  i = ((offset or 1) - 1) * math.floor(#creds / 2)
end

function request()
  i = i % #creds + 1
  return wrk.format("GET", "/forward-auth", {
    ["X-Forwarded-Method"] = "GET",
    ["X-Forwarded-Proto"] = "http",
    ["X-Forwarded-Host"] = "app.bench.test",
    ["X-Forwarded-Uri"] = "/reports/2026/q1",
    [header] = creds[i],
  })
end
