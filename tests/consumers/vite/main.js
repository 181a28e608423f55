// The page: runs the scenario and the durable (OPFS) replica with the server given in
// the query string, reports in the title (JSON, or "ERROR …").
import { scenario } from "./scenario.js";
import { durable } from "./durable.js";

const q = new URLSearchParams(location.search);
const [url, token, name] = [q.get("url"), q.get("token"), q.get("name")];
scenario(url, token, name)
  .then(async (r) => ({ ...r, durable: await durable(url, token, name) }))
  .then(
    (r) => (document.title = JSON.stringify(r)),
    (e) => (document.title = `ERROR ${e?.code ?? ""} ${e?.message ?? e}`),
  );
