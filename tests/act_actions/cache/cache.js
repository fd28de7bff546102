// actions/cache (and its restore and save sub-actions) under `nox -s nightly-local`: each key is a folder
// $BEAST_ACT_DIR/cache/<key>/ holding a copy of every path, numbered in the order of the `path` input.
// Restore: the exact key (cache-hit "true"), else the newest key starting with a restore-keys line.
// Save: only when the key has no entry yet (caches are immutable, as on GitHub).
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");

const input = (name) => (process.env[`INPUT_${name.replace(/ /g, "_").toUpperCase()}`] || "").trim();
const lines = (text) => text.split("\n").map((l) => l.trim()).filter(Boolean);
const expand = (p) => path.resolve(process.env.GITHUB_WORKSPACE || ".", p.replace(/^~(?=$|\/)/, os.homedir()));
const store = () => path.join(process.env.BEAST_ACT_DIR, "cache");
const entry = (key) => path.join(store(), encodeURIComponent(key));
const append = (file, name, value) => fs.appendFileSync(process.env[file], `${name}=${value}\n`);

function restore() {
  const key = input("key");
  const paths = lines(input("path"));
  let found = fs.existsSync(entry(key)) ? key : "";
  if (!found && fs.existsSync(store())) {
    for (const prefix of lines(input("restore-keys"))) {
      const hits = fs.readdirSync(store()).map(decodeURIComponent).filter((k) => k.startsWith(prefix))
        .sort((a, b) => fs.statSync(entry(b)).mtimeMs - fs.statSync(entry(a)).mtimeMs);
      if (hits.length) { found = hits[0]; break; }
    }
  }
  append("GITHUB_OUTPUT", "cache-hit", String(found === key));
  append("GITHUB_OUTPUT", "cache-primary-key", key);
  append("GITHUB_OUTPUT", "cache-matched-key", found);
  if (process.env.GITHUB_STATE) {
    append("GITHUB_STATE", "hit", String(found === key));
  }
  if (!found) {
    console.log(`Cache not found for input keys: ${key}`);
    return;
  }
  paths.forEach((p, i) => {
    const saved = path.join(entry(found), String(i));
    if (fs.existsSync(saved)) {
      fs.mkdirSync(path.dirname(expand(p)), { recursive: true });
      fs.cpSync(saved, expand(p), { recursive: true, force: true });
    }
  });
  console.log(`Cache restored from key: ${found} (${entry(found)})`);
}

function save() {
  const key = input("key");
  if (fs.existsSync(entry(key))) {
    console.log(`Cache hit occurred on the primary key ${key}, not saving cache.`);
    return;
  }
  const partial = `${entry(key)}.partial-${process.pid}`;
  lines(input("path")).forEach((p, i) => {
    if (fs.existsSync(expand(p))) {
      fs.cpSync(expand(p), path.join(partial, String(i)), { recursive: true });
    } else {
      console.log(`::warning::Path Validation Error: ${p} does not exist, not saved`);
    }
  });
  fs.mkdirSync(partial, { recursive: true });
  fs.renameSync(partial, entry(key));
  console.log(`Cache saved with key: ${key} (${entry(key)})`);
}

module.exports = { restore, save };
