-- wrk script: POST /start with a new replId on every request, so each one creates a Repl.
--   wrk -t2 -c64 -d30s -s bench/start.lua http://127.0.0.1:3002
-- Every thread numbers its own ids; the summary prints the non-2xx count.
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  thread_id = id
end

function request()
  counter = counter + 1
  local body = string.format('{"userId":"load-user","replId":"load-%d-%d"}', thread_id, counter)
  return wrk.format("POST", "/start", {["Content-Type"] = "application/json"}, body)
end

local errors = 0
function response(status, headers, body)
  if status >= 300 then errors = errors + 1 end
end

function done(summary, latency, requests)
  io.write(string.format("requests: %d, p50: %.1f ms, p99: %.1f ms, non-2xx/3xx responses: see wrk's line above\n",
    summary.requests, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
