// A Worker: GET /?url=…&token=… runs the scenario and answers with what it saw.
import { scenario } from "./scenario.js";

export default {
  async fetch(request: Request): Promise<Response> {
    const q = new URL(request.url).searchParams;
    try {
      return Response.json(await scenario(q.get("url"), q.get("token"), "wrangler"));
    } catch (e) {
      const err = e as { code?: string; message?: string };
      return Response.json({ error: `${err.code ?? ""} ${err.message ?? String(e)}` }, { status: 500 });
    }
  },
};
