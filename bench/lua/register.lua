-- Register consoles: a new (instance, port) each request, over the instances listed
-- in a file.  wrk -s register.lua URL -- INSTANCES_FILE AUTHORIZATION CONSOLE_HOST
package.path = debug.getinfo(1, "S").source:match("@(.*/)") .. "?.lua;" .. package.path
local common = require("common")
local instances, counter, console_host
statuses = {}

setup = common.setup

function init(args)
  instances, console_host = common.lines(args[1]), args[3]
  counter = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = args[2]
end

function request()
  counter = counter + 1
  local instance = instances[(counter - 1) % #instances + 1]
  -- Ports 1024 + n per instance and thread: every request a new console row.
  local port = 1024 + thread_id * 30000 + math.floor((counter - 1) / #instances)
  return wrk.format(nil, "/v1/consoles", nil, string.format(
    '{"instance_uuid":"%s","host":"%s","port":%d,"console_type":"novnc","ttl":600}',
    instance, console_host, port))
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests) common.done(summary, latency) end
