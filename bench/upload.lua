-- wrk script: every request uploads (2301) five fee lines to a prepared visit from $VISITS,
-- each request's lines new (feedetl_sn from the request's own counter).
local ids = {}
for line in io.lines(os.getenv("VISITS")) do ids[#ids + 1] = line end
local threads, counter = 0, 0

function setup(thread)
  thread:set("offset", threads)
  threads = threads + 1
  thread:set("stride", tonumber(os.getenv("WRK_THREADS") or "2"))
end

function init(args)
  counter = offset
end

local items = {{"X00001E78900", "120.50"}, {"S0240201", "58.00"}, {"X00088E6B300", "35.00"},
               {"S0254500", "240.00"}, {"X00001E78900", "60.25"}}

request = function()
  counter = counter + stride
  local id = ids[(counter % #ids) + 1]
  local lines = {}
  for k, item in ipairs(items) do
    lines[k] = '{"feedetl_sn":"U' .. counter .. '-' .. k .. '","mdtrt_id":"' .. id .. '","med_list_codg":"' ..
      item[1] .. '","cnt":"2","pric":"' .. item[2] .. '"}'
  end
  local body = '{"infno":"2301","msgid":"U' .. offset .. '-' .. counter .. '","fixmedins_code":"' ..
    os.getenv("HOSPITAL") .. '","input":{"feedetail":[' .. table.concat(lines, ",") .. ']}}'
  return wrk.format("POST", nil, {["Content-Type"] = "application/json",
                                 ["Authorization"] = "Bearer dev-" .. os.getenv("HOSPITAL")}, body)
end
