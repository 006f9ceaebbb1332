// heap.js - a V8 heap of about 450 MB of small objects, built and summed
// (room: tests).  Run under dsm-run by tests/test_preload_programs.sh and
// bench/preload.sh: its output must be the same as without the shim.
const arrs = [];
let sum = 0;
for (let i = 0; i < 20; i++) {
  const a = new Array(500000);
  for (let j = 0; j < a.length; j++) a[j] = { v: (i * 7 + j) % 1000, s: "k" + (j % 97) };
  arrs.push(a);
}
for (const a of arrs) for (const o of a) sum += o.v + o.s.length;
console.log("sum", sum, "arrays", arrs.length);
