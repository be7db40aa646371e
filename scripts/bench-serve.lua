-- wrk script for scripts/bench-serve.sh: one trivial run per request,
-- `POST /v1/sessions/{id}/runs {"runs":[{}]}`, round-robin over the session
-- ids in WEFT_SESSIONS (comma-separated). Prints one machine-readable line:
-- WRK requests duration_us p50_us p99_us non_2xx socket_errors
local ids = {}
for id in string.gmatch(os.getenv("WEFT_SESSIONS") or "", "[^,]+") do
  ids[#ids + 1] = id
end
local i = 0
wrk.method = "POST"
wrk.body = '{"runs":[{}]}'
wrk.headers["Content-Type"] = "application/json"

request = function()
  i = i + 1
  return wrk.format(nil, "/v1/sessions/" .. ids[(i % #ids) + 1] .. "/runs")
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK %d %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.status,
    e.connect + e.read + e.write + e.timeout))
end
