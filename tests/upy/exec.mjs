// Runs one Python script under MicroPython (WebAssembly) with the engine importable:
//
//   node tests/upy/exec.mjs SCRIPT.py
//
// edge/core/*.py are copied into MicroPython's file system at /lib/edge/core. The script's
// output goes to stdout. Exit status 1 when the script raises (the package's own CLI would exit
// 0), 0 otherwise. bench/engine.py uses this to time the engine under MicroPython.

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { loadMicroPython } from "./node_modules/@micropython/micropython-webassembly-pyscript/micropython.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..", "..");
const script = process.argv[2];
if (!script) {
  console.error("usage: node tests/upy/exec.mjs SCRIPT.py");
  process.exit(2);
}

const mp = await loadMicroPython({
  heapsize: 64 * 1024 * 1024,
  stdout: (line) => console.log(line),
  stderr: (line) => console.error(line),
});
mp.FS.mkdirTree("/lib/edge/core");
mp.FS.writeFile("/lib/edge/__init__.py", fs.readFileSync(path.join(root, "edge", "__init__.py"), "utf8"));
for (const name of fs.readdirSync(path.join(root, "edge", "core")).sort()) {
  if (name.endsWith(".py")) {
    mp.FS.writeFile(`/lib/edge/core/${name}`, fs.readFileSync(path.join(root, "edge", "core", name), "utf8"));
  }
}
try {
  mp.runPython("import sys\nsys.path.insert(0, '/lib')\n" + fs.readFileSync(script, "utf8"));
} catch (error) {
  if (error.name !== "PythonError") throw error;
  console.error(error.message);
  process.exit(1);
}
process.exit(0);
