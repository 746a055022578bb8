// What both matrix-js-sdk scenarios share: the SDK (with the shim Node 20 needs), raw API calls,
// bounded waiting, starting a client with Rust crypto, and reading decrypted timelines.

// matrix-js-sdk 43 calls Promise.withResolvers (Node 22); Node 20 lacks it.
if (!Promise.withResolvers) {
  Promise.withResolvers = function () {
    let resolve, reject;
    const promise = new Promise((a, b) => { resolve = a; reject = b; });
    return { promise, resolve, reject };
  };
}
export const sdk = await import("matrix-js-sdk");
const { logger } = await import("matrix-js-sdk/lib/logger.js");
logger.setLevel("warn");

export const base = process.argv[2];
export const PASSWORD = "correct horse battery";
const started = [];

export function fail(message) {
  console.error("FAIL:", message);
  for (const client of started) client.stopClient();
  process.exit(1);
}

export function finish(message) {
  for (const client of started) client.stopClient();
  console.log(`OK: ${message}`);
  process.exit(0);
}

export async function api(method, path, token, body) {
  const response = await fetch(base + path, {
    method,
    headers: { "Content-Type": "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await response.json();
  if (!response.ok) fail(`${method} ${path} -> ${response.status} ${JSON.stringify(json)}`);
  return json;
}

/** Polls `check` every 100 ms for at most `seconds`. */
export async function waitFor(what, check, seconds = 20) {
  for (let i = 0; i < seconds * 10; i++) {
    const value = await check();
    if (value) return value;
    await new Promise((r) => setTimeout(r, 100));
  }
  fail(`timed out waiting for ${what}`);
}

export function register(name) {
  return api("POST", "/_matrix/client/v3/register", null, { username: name, password: PASSWORD, auth: { type: "m.login.dummy" } });
}

export function login(userId) {
  return api("POST", "/_matrix/client/v3/login", null, {
    type: "m.login.password",
    identifier: { type: "m.id.user", user: userId },
    password: PASSWORD,
  });
}

/** A started client with Rust crypto (in memory), after its first sync. */
export async function start(credentials, cryptoCallbacks = undefined) {
  const client = sdk.createClient({
    baseUrl: base,
    userId: credentials.user_id,
    deviceId: credentials.device_id,
    accessToken: credentials.access_token,
    cryptoCallbacks,
  });
  await client.initRustCrypto({ useIndexedDB: false });
  started.push(client);
  const ready = new Promise((resolve) => client.once(sdk.ClientEvent.Sync, resolve));
  await client.startClient({ initialSyncLimit: 50 });
  await ready;
  return client;
}

/** The decrypted bodies of a room's timeline as the client holds it. */
export async function bodies(client, roomId) {
  const room = client.getRoom(roomId);
  if (!room) return [];
  const events = room.getLiveTimeline().getEvents();
  await Promise.all(events.map((event) => client.decryptEventIfNeeded(event)));
  return events.filter((e) => e.getType() === "m.room.message").map((e) => e.getContent().body);
}

/** An encrypted DM from `creator` with `invitee`, joined. */
export async function encryptedDm(creator, invitee) {
  const { room_id: roomId } = await creator.createRoom({
    is_direct: true,
    preset: "trusted_private_chat",
    invite: [invitee.getUserId()],
    initial_state: [{ type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }],
  });
  await waitFor("the invite", () => invitee.getRoom(roomId)?.getMyMembership() === "invite");
  await invitee.joinRoom(roomId);
  await waitFor("both members in the creator's view", () => creator.getRoom(roomId)?.getJoinedMemberCount() === 2);
  return roomId;
}
