// The benchmark's dependency changes, in order (bench/bench.ts; run.sh puts their wheels into the
// test servers' wheelhouse): each adds or bumps one small pure-Python (py3-none-any) package.
export const DEP_STEPS = ["six==1.16.0", "six==1.17.0", "idna==3.9", "idna==3.10"];
