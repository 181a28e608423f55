// Chat (seed 003): rooms and messages in the local replica (they send offline and
// arrive when the device is back), reactions as a `set` column (add-wins: two devices
// reacting at once both count), read receipts, and typing indicators that are
// ephemeral — they travel through the real-time hub and are never stored. A device that
// pushes announces it on the hub, so the others pull at once: messages arrive live.
import { $, clock, coalesce, colorFor, fill, h, newId } from "../ui.js";

export const id = "chat";
export const title = "Chat";

export const schema = [
  "create table if not exists chat_rooms (id text primary key, name text not null, created_at integer not null default 0)",
  `create table if not exists chat_messages (id text primary key, room text not null, author text not null, body text not null,
     sent_at integer not null, reactions text not null default '[]')`,
  "create index if not exists chat_messages_room on chat_messages (room, sent_at)",
  "create table if not exists chat_reads (id text primary key, room text not null, user text not null, last_read integer not null)",
  // A user's unsent message per room: it follows the user to their other devices, and
  // only them (through the edge Worker, the sync rules keep it to its user).
  "create table if not exists chat_drafts (id text primary key, room text not null, user text not null, body text not null default '', updated_at integer not null default 0)",
];

export const replicate = [
  ["chat_rooms", {}],
  ["chat_messages", { reactions: "set" }],
  ["chat_reads", {}],
  ["chat_drafts", {}],
];

const EMOJI = ["👍", "❤️", "🎉", "😂", "👀"];
const TYPING_MS = 3500;

export function init(device) {
  void device.db.batch(
    [["general", "general"], ["random", "random"], ["ops", "ops-alerts"]].map(([k, n]) => ({ sql: "insert or ignore into chat_rooms (id, name) values (?, ?)", args: [k, n] })),
    "write",
  );
}

export async function send(device, room, body) {
  await device.db.execute({
    sql: "insert into chat_messages (id, room, author, body, sent_at) values (?, ?, ?, ?, ?)",
    args: [newId("m"), room, device.config.user, body, Date.now()],
  });
  device.changed("chat_messages");
  void device.syncNow(); // live when online; queued when not
}

/** Adds or removes this user's `emoji` on a message: one element of the set column. */
export async function toggleReaction(device, messageId, emoji) {
  const element = `${emoji} ${device.config.user}`;
  await device.db.execute({
    sql: `update chat_messages set reactions = case
            when exists (select 1 from json_each(reactions) where value = :e)
              then (select json_group_array(value) from json_each(reactions) where value != :e)
            else json_insert(reactions, '$[#]', :e) end
          where id = :id`,
    args: { e: element, id: messageId },
  });
  device.changed("chat_messages");
  void device.syncNow();
}

/** Saves this user's unsent text in `room` (an empty text removes the draft). */
export async function saveDraft(device, room, body) {
  const user = device.config.user;
  const id = `${room}:${user}`;
  if (body) {
    await device.db.execute({
      sql: "insert into chat_drafts (id, room, user, body, updated_at) values (?, ?, ?, ?, ?) on conflict (id) do update set body = excluded.body, updated_at = excluded.updated_at",
      args: [id, room, user, body, Date.now()],
    });
  } else {
    await device.db.execute({ sql: "delete from chat_drafts where id = ?", args: [id] });
  }
}

export function mount(el, device) {
  const db = device.db;
  const me = device.config.user;
  let room = sessionStorage.getItem("edgesync.chat.room") || "general";
  /** @type {Map<string, number>} user → until (ms) */
  const typing = new Map();
  let lastTypingSent = 0;

  const input = /** @type {HTMLInputElement} */ (h("input#chat-input", { type: "text", placeholder: "Message", autocomplete: "off" }));
  el.append(
    h("div.app-head", null, h("p", null, "Messages are written locally and sync through the server; reactions are a set column, so concurrent reactions from two devices all survive. Typing indicators go through the real-time hub only.")),
    h("div.chat", null,
      h("div.rooms#rooms"),
      h("div.conversation", null,
        h("div.messages#messages"),
        h("div.typing#typing"),
        h("form.composer#composer", { onsubmit: async (e) => {
          e.preventDefault();
          const body = input.value.trim();
          if (!body) return;
          input.value = "";
          clearTimeout(draftTimer);
          await saveDraft(device, room, "");
          await send(device, room, body);
        } }, input, h("button.btn.primary#chat-send", { type: "submit" }, "Send")),
      ),
    ),
  );
  let draftTimer = /** @type {any} */ (undefined);
  /** The draft of the room shown, into the composer (unless the user is typing there). */
  const loadDraft = async () => {
    const [forRoom, before] = [room, input.value];
    if (document.activeElement === input && before) return;
    const r = await db.execute({ sql: "select body from chat_drafts where id = ?", args: [`${forRoom}:${me}`] });
    // What the user typed (or a room switch) while the draft was read wins: writing the
    // stored draft over it would erase a message about to be sent.
    if (room !== forRoom || input.value !== before) return;
    input.value = String(r.rows[0]?.body ?? "");
  };
  input.addEventListener("input", () => {
    const [forRoom, body] = [room, input.value.trim()];
    clearTimeout(draftTimer);
    draftTimer = setTimeout(() => void saveDraft(device, forRoom, body), 300);
    const now = Date.now();
    if (now - lastTypingSent > 1500) {
      lastTypingSent = now;
      device.publish("chat:typing", { room, user: me, at: now });
    }
  });

  const paint = coalesce(async () => {
    const rooms = await db.execute({
      sql: `select r.id, r.name, (select count(*) from chat_messages m where m.room = r.id and m.author != :me
              and m.sent_at > coalesce((select last_read from chat_reads where room = r.id and user = :me), 0)) as unread
            from chat_rooms r order by r.name`,
      args: { me },
    });
    fill($("rooms"), rooms.rows.map((r) => h(`button${r.id === room ? ".active" : ""}`, { type: "button", dataset: { room: String(r.id) }, onclick: () => { room = String(r.id); sessionStorage.setItem("edgesync.chat.room", room); input.value = ""; void loadDraft(); paint(); } },
      h("span", null, `# ${r.name}`), Number(r.unread) > 0 && r.id !== room ? h("span.unread", null, String(r.unread)) : null)));

    const msgs = await db.execute({ sql: "select id, author, body, sent_at, reactions from chat_messages where room = ? order by sent_at, id", args: [room] });
    const reads = await db.execute({ sql: "select user, last_read from chat_reads where room = ? and user != ?", args: [room, me] });
    const box = $("messages");
    const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
    const lastMine = [...msgs.rows].reverse().find((m) => m.author === me);
    fill(box, msgs.rows.length ? msgs.rows.map((m) => {
      const mine = m.author === me;
      /** @type {Map<string, string[]>} */
      const byEmoji = new Map();
      for (const el of JSON.parse(String(m.reactions || "[]"))) {
        const [emoji, ...who] = String(el).split(" ");
        byEmoji.set(emoji, [...(byEmoji.get(emoji) ?? []), who.join(" ")]);
      }
      const seenBy = m === lastMine ? reads.rows.filter((r) => Number(r.last_read) >= Number(m.sent_at)).map((r) => String(r.user)) : [];
      return h(`div.msg${mine ? ".mine" : ""}`, { dataset: { id: String(m.id) } },
        h("div.meta", null, h("b", { style: { color: colorFor(m.author) } }, m.author), h("span", null, clock(Number(m.sent_at))),
          h("span.react-bar", null, EMOJI.map((e) => h("button", { type: "button", title: `React ${e}`, onclick: () => void toggleReaction(device, String(m.id), e) }, e)))),
        h("div.bubble", null, m.body),
        byEmoji.size ? h("div.reactions", null, [...byEmoji].map(([e, who]) => h(`button.reaction${who.includes(me) ? ".mine" : ""}`, { type: "button", title: who.join(", "), dataset: { emoji: e }, onclick: () => void toggleReaction(device, String(m.id), e) }, `${e} ${who.length}`))) : null,
        seenBy.length ? h("div.seen", null, `Seen by ${seenBy.join(", ")}`) : null,
      );
    }) : h("div.empty", null, "No messages in this room yet"));
    if (atBottom || msgs.rows.length < 12) box.scrollTop = box.scrollHeight;

    // Read receipt: everything shown here is read by this user.
    const newest = msgs.rows.length ? Number(msgs.rows[msgs.rows.length - 1].sent_at) : 0;
    const mineRead = await db.execute({ sql: "select last_read from chat_reads where id = ?", args: [`${room}:${me}`] });
    if (newest > Number(mineRead.rows[0]?.last_read ?? 0)) {
      await db.execute({ sql: "insert into chat_reads (id, room, user, last_read) values (?, ?, ?, ?) on conflict (id) do update set last_read = max(last_read, excluded.last_read)", args: [`${room}:${me}`, room, me, newest] });
    }
  });

  const paintTyping = () => {
    const now = Date.now();
    const who = [...typing].filter(([u, until]) => until > now && u !== me).map(([u]) => u);
    $("typing").textContent = who.length ? `${who.join(", ")} ${who.length === 1 ? "is" : "are"} typing…` : "";
  };
  const offHub = device.subscribe("chat:typing", (_t, d) => {
    if (!d || d.room !== room || d.user === me) return;
    typing.set(String(d.user), Date.now() + TYPING_MS);
    paintTyping();
  });
  paint();
  void loadDraft();
  const timer = setInterval(paintTyping, 500);
  const off = device.on("changed", paint);
  return () => {
    clearInterval(timer);
    off();
    offHub();
  };
}
