-- wrk script for bench/api.ts (IX_BENCH_LOAD=wrk): POST /jobs with a unique request id per
-- request (IX_BENCH_PREFIX-<thread>-<n>) and the Bearer key in IX_BENCH_KEY.
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local prefix = os.getenv("IX_BENCH_PREFIX")
local headers = {
  ["content-type"] = "application/json",
  ["authorization"] = "Bearer " .. os.getenv("IX_BENCH_KEY"),
}
local n = 0

function request()
  n = n + 1
  local body = string.format(
    '{"request":{"ix_client_id":"bench","request_id":"%s-%d-%d",' ..
      '"input":{"document":"s3://bench/doc-%d.pdf","pages":[1,2,3]}},"callback_url":null}',
    prefix, tid, n, n)
  return wrk.format("POST", "/jobs", headers, body)
end
