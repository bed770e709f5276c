// The benchmark's dependency changes, in order (bench/bench.ts; run.sh puts their wheels into the
// test servers' wheelhouse): each adds or bumps one small pure-Python (py3-none-any) package.
export const DEP_STEPS = ["six==1.16.0", "six==1.17.0", "idna==3.9", "idna==3.10"];

// bench/speed.ts's dependency cases: `dependency` adds SPEED_DEP.add; `dependency-bump` goes from
// bumpFrom to bumpTo; `dependency-removal` drops SPEED_DEP.add again. An add can start from a copy of
// the live venv; a bump or a removal builds the venv from nothing.
export const SPEED_DEP = { add: "six==1.17.0", bumpFrom: "six==1.16.0", bumpTo: "six==1.17.0" };
