-- wrk script: POST one binary body (a raw tensor) read from a file, with its content type and an
-- optional extra header, and the same machine-readable summary as post.lua (whose `done` it loads).
-- Usage: wrk -s bench/post_raw.lua URL -- BODY_FILE CONTENT_TYPE [HEADER VALUE]

local here = debug.getinfo(1, "S").source:sub(2):match("^(.*[/\\])") or ""
dofile(here .. "post.lua")
request = nil -- one static body: wrk sends wrk.body as it is, without a per-request function

function init(args)
  local file = assert(io.open(args[1], "rb"))
  wrk.body = file:read("*a")
  file:close()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = args[2]
  if args[3] then wrk.headers[args[3]] = args[4] end
end
