-- wrk script for the soak: POSTs to several routes, each request's route drawn at random by
-- weight and its body drawn at random among that route's bodies; answers counted by status.
-- Usage: wrk -s bench/soak.lua URL -- BODIES_FILE WEIGHTS
--   BODIES_FILE: one "<path>\t<json body>" a line
--   WEIGHTS: "/decode=4,/encode=3,/sample=2,/interpolate=1"
-- At the end one line: SOAK_JSON {"requests", "duration_us", "errors": {...},
-- "statuses": {"200": n, "429": n, ...}, "latency_us": {...}}

local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
end

function init(args)
  by_path = {}
  for line in io.lines(args[1]) do
    local path, body = line:match("^(%S+)\t(.+)$")
    if path then
      by_path[path] = by_path[path] or {}
      local list = by_path[path]
      list[#list + 1] = body
    end
  end
  choices, total = {}, 0
  for path, weight in args[2]:gmatch("([^,=]+)=(%d+)") do
    if by_path[path] then
      total = total + tonumber(weight)
      choices[#choices + 1] = {path = path, upto = total}
    end
  end
  statuses = {}
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  local pick = math.random(total)
  for _, choice in ipairs(choices) do
    if pick <= choice.upto then
      local list = by_path[choice.path]
      return wrk.format(nil, choice.path, nil, list[math.random(#list)])
    end
  end
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses") or {}) do
      counts[status] = (counts[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(counts) do
    parts[#parts + 1] = string.format('"%d": %d', status, n)
  end
  local e = summary.errors
  io.write(string.format(
    'SOAK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"statuses": {%s}, ' ..
    '"latency_us": {"mean": %.1f, "p50": %d, "p99": %d, "max": %d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    table.concat(parts, ", "),
    latency.mean, latency:percentile(50), latency:percentile(99), latency.max))
end
