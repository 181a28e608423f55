// The page: runs the scenario with the server given in the query string, reports in
// the title (JSON, or "ERROR …").
import { scenario } from "./scenario.js";

const q = new URLSearchParams(location.search);
scenario(q.get("url"), q.get("token"), q.get("name")).then(
  (r) => (document.title = JSON.stringify(r)),
  (e) => (document.title = `ERROR ${e?.code ?? ""} ${e?.message ?? e}`),
);
