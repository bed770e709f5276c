// The .env renderer: values reach systemd's EnvironmentFile and python-dotenv exactly, whatever
// characters they hold; newlines are refused with the key named.
import * as assert from "assert";
import { deployPaths, envLine, renderEnvFile, withDeployPaths } from "../../components/environment";
import { parseHistory } from "../../components/activation";

describe(".env rendering", () => {
  it("quotes and escapes values", () => {
    assert.strictEqual(envLine("A", `it's "x" \\ $(y) \`z\``), `A="it's \\"x\\" \\\\ $(y) \`z\`"`);
  });
  it("sorts keys and ends with a newline", () => {
    assert.strictEqual(renderEnvFile({ B: "2", A: "1" }), 'A="1"\nB="2"\n');
  });
  it("replaces ${APP_ROOT}, ${SHARED} and ${DATABASE_PATH} in values, and no other ${…}", () => {
    const paths = deployPaths("/srv/shop");
    assert.deepStrictEqual(withDeployPaths({
      DATABASE_URL: "sqlite:///${DATABASE_PATH}", A: "${SHARED}/x:${APP_ROOT}", B: "${HOME} $DATABASE_PATH ${database_path} ${DATABASE_PATH", C: "plain",
    }, paths), {
      DATABASE_URL: "sqlite:////srv/shop/shared/db/app.sqlite3", A: "/srv/shop/shared/x:/srv/shop", B: "${HOME} $DATABASE_PATH ${database_path} ${DATABASE_PATH", C: "plain",
    });
  });
  it("refuses newlines, naming the key", () => {
    assert.throws(() => envLine("SECRET_KEY", "a\nb"), /SECRET_KEY: values may not contain newlines/);
  });
});

describe("release history", () => {
  it("reads the history from the activation's JSON result (its last line) and ignores the rest", () => {
    const result = {
      ok: true, entry: {},
      history: [
        { time: "2026-11-24T01:00:00Z", releaseId: "0123456789ab", status: "live", schemaVersion: "2" },
        { time: "2026-11-24T01:05:00Z", releaseId: "ba9876543210", status: "failed", schemaVersion: "" },
        { time: "2026-11-24T01:06:00Z", releaseId: "not-an-id", status: "live", schemaVersion: "3" },
      ],
    };
    assert.deepStrictEqual(parseHistory(`some line\n${JSON.stringify(result)}\n`), [
      { time: "2026-11-24T01:00:00Z", releaseId: "0123456789ab", status: "live", schemaVersion: "2" },
      { time: "2026-11-24T01:05:00Z", releaseId: "ba9876543210", status: "failed", schemaVersion: "" },
    ]);
    assert.deepStrictEqual(parseHistory("2026-11-24T01:00:00Z 0123456789ab live strategy=restart schema=2\n"), []);
    assert.deepStrictEqual(parseHistory(""), []);
  });
});
