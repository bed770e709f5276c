// A server keeps its place in `servers` (components/server-order.ts): removing servers from the end is
// allowed, a server moved to another place (its old place's resources would be deleted on it) is refused.
import * as assert from "assert";
import { previousHosts, serverOrderProblem } from "../../components/server-order";

describe("servers keep their places (removing a server, issue 32)", () => {
  it("reads the hosts of the last up's `server` output, in order", () => {
    assert.deepStrictEqual(previousHosts("root@10.0.0.1:22, deploy@app2.example:2222"), ["10.0.0.1", "app2.example"]);
    assert.deepStrictEqual(previousHosts("root@10.0.0.1:22"), ["10.0.0.1"]);
    assert.deepStrictEqual(previousHosts(undefined), []);   // a new stack, or a program that does not export it
  });

  it("allows removing or adding at the end, and another host at a place (as before)", () => {
    for (const now of [["a"], ["a", "b"], ["a", "b", "c", "d"], ["a", "x", "c"]]) {
      assert.strictEqual(serverOrderProblem(["a", "b", "c"], now), undefined, now.join(","));
    }
    assert.strictEqual(serverOrderProblem([], ["b", "a"]), undefined);
  });

  it("refuses a server that moved, naming servers and both places", () => {
    assert.strictEqual(serverOrderProblem(["10.0.0.1", "10.0.0.2"], ["10.0.0.2"])!.split("\n")[0],
      "flask-deploy:servers: 10.0.0.2 moved from servers[1] to servers[0]; expected each server to keep its place: remove servers from the end");
    assert.match(serverOrderProblem(["a", "b", "c"], ["a", "c"])!, /c moved from servers\[2\] to servers\[1\]/);
    assert.match(serverOrderProblem(["a", "b"], ["b", "a"])!, /a moved from servers\[0\] to servers\[1\]/);
  });
});
