"use strict";
// post of the full action: save unless the restore hit the exact key
if (process.env.STATE_hit !== "true") require("./cache.js").save();
