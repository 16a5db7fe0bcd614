// Runs the engine's plain test cases (tests/core/cases_*.py) under MicroPython (WebAssembly).
//
//   node tests/upy/run.mjs [--cases DIR] [name-filter ...]
//
// The engine sources (edge/core/*.py) and the case modules are copied into MicroPython's
// in-memory file system, each case module is imported, and every function named test_* is
// called on its own. The package's CLI exits 0 even when Python raises, so this runner checks
// the outcome itself: runPython throws a PythonError when the Python code raises, which counts
// as a failure (printed with its traceback). It ends with "N passed, N failed" and exits
// non-zero on any failure or when no test ran. --cases DIR takes the case modules from another
// directory (the runner's own test uses it to prove a failing case is caught).

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { loadMicroPython } from "./node_modules/@micropython/micropython-webassembly-pyscript/micropython.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..", "..");

function parseArgs(argv) {
  const out = { casesDir: path.join(root, "tests", "core"), filters: [] };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--cases") out.casesDir = path.resolve(argv[++i]);
    else out.filters.push(argv[i]);
  }
  return out;
}

function copyTree(mp, srcDir, destDir, accept) {
  mp.FS.mkdirTree(destDir);
  for (const name of fs.readdirSync(srcDir).sort()) {
    if (accept(name)) {
      mp.FS.writeFile(path.posix.join(destDir, name), fs.readFileSync(path.join(srcDir, name), "utf8"));
    }
  }
}

const args = parseArgs(process.argv.slice(2));
const started = Date.now();
let output = [];
const mp = await loadMicroPython({
  heapsize: 64 * 1024 * 1024,
  stdout: (line) => output.push(line),
  stderr: (line) => output.push(line),
});

// /lib/edge/core: the engine exactly as in the repository; /lib/tests/core: the plain cases.
const py = (name) => name.endsWith(".py");
copyTree(mp, path.join(root, "edge"), "/lib/edge", (n) => n === "__init__.py");
copyTree(mp, path.join(root, "edge", "core"), "/lib/edge/core", py);
mp.FS.mkdirTree("/lib/tests/core");
mp.FS.writeFile("/lib/tests/__init__.py", "");
copyTree(mp, path.join(root, "tests", "core"), "/lib/tests/core", (n) => n === "__init__.py" || n === "casekit.py");
const modules = fs
  .readdirSync(args.casesDir)
  .filter((n) => n.startsWith("cases_") && n.endsWith(".py"))
  .sort();
for (const name of modules) {
  mp.FS.writeFile(`/lib/tests/core/${name}`, fs.readFileSync(path.join(args.casesDir, name), "utf8"));
}
mp.runPython("import sys\nsys.path.insert(0, '/lib')\n");

let passed = 0;
let failed = 0;
function flushOutput(prefix) {
  for (const line of output) console.log(prefix + line);
  output = [];
}

for (const file of modules) {
  const mod = file.slice(0, -3);
  let names;
  try {
    mp.runPython(`import tests.core.${mod} as _m\n_names = " ".join(sorted(n for n in dir(_m) if n.startswith("test_")))\n`);
    names = String(mp.globals.get("_names")).split(" ").filter((n) => n);
  } catch (error) {
    if (error.name !== "PythonError") throw error;
    failed++;
    console.log(`FAIL ${mod} (import)\n${error.message}`);
    flushOutput("  | ");
    continue;
  }
  for (const name of names) {
    const id = `${mod}::${name}`;
    if (args.filters.length && !args.filters.some((f) => id.includes(f))) continue;
    try {
      mp.runPython(`_m.${name}()\n`);
      passed++;
      output = [];
    } catch (error) {
      if (error.name !== "PythonError") throw error;
      failed++;
      console.log(`FAIL ${id}\n${error.message}`);
      flushOutput("  | ");
    }
  }
}

const seconds = ((Date.now() - started) / 1000).toFixed(1);
console.log(`MicroPython ${modules.length} case modules in ${seconds} s`);
console.log(`${passed} passed, ${failed} failed`);
if (passed + failed === 0) console.log("no test ran: that is a failure too");
process.exit(failed > 0 || passed + failed === 0 ? 1 : 0);
