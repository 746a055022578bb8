// End-to-end encryption through matrix-js-sdk's Rust crypto (the stack Element Web uses)
// against a running hearth: an encrypted DM both ways, cross-signing bootstrapped through
// /keys/device_signing/upload, a key backup made by the SDK, and a second device of the same
// user that restores the backup and decrypts the history. Exits non-zero on any failure.
//
//     node e2ee.mjs http://127.0.0.1:8008

// matrix-js-sdk 43 calls Promise.withResolvers (Node 22); Node 20 lacks it.
if (!Promise.withResolvers) {
  Promise.withResolvers = function () {
    let resolve, reject;
    const promise = new Promise((a, b) => { resolve = a; reject = b; });
    return { promise, resolve, reject };
  };
}
const sdk = await import("matrix-js-sdk");
const { logger } = await import("matrix-js-sdk/lib/logger.js");
logger.setLevel("warn");

const base = process.argv[2];
const PASSWORD = "correct horse battery";
const started = [];

function fail(message) {
  console.error("FAIL:", message);
  for (const client of started) client.stopClient();
  process.exit(1);
}

async function api(method, path, token, body) {
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
async function waitFor(what, check, seconds = 20) {
  for (let i = 0; i < seconds * 10; i++) {
    const value = await check();
    if (value) return value;
    await new Promise((r) => setTimeout(r, 100));
  }
  fail(`timed out waiting for ${what}`);
}

async function start(credentials) {
  const client = sdk.createClient({
    baseUrl: base,
    userId: credentials.user_id,
    deviceId: credentials.device_id,
    accessToken: credentials.access_token,
  });
  await client.initRustCrypto({ useIndexedDB: false });
  started.push(client);
  const ready = new Promise((resolve) => client.once(sdk.ClientEvent.Sync, resolve));
  await client.startClient({ initialSyncLimit: 50 });
  await ready;
  return client;
}

async function register(name) {
  return api("POST", "/_matrix/client/v3/register", null, { username: name, password: PASSWORD, auth: { type: "m.login.dummy" } });
}

/** The decrypted bodies of a room's timeline as the client holds it. */
async function bodies(client, roomId) {
  const room = client.getRoom(roomId);
  if (!room) return [];
  const events = room.getLiveTimeline().getEvents();
  await Promise.all(events.map((event) => client.decryptEventIfNeeded(event)));
  return events.filter((e) => e.getType() === "m.room.message").map((e) => e.getContent().body);
}

const suffix = Date.now().toString(36);
const aliceCredentials = await register(`alice${suffix}`);
const bobCredentials = await register(`bob${suffix}`);
const alice = await start(aliceCredentials);
const bob = await start(bobCredentials);

// An encrypted DM.
const { room_id: roomId } = await alice.createRoom({
  is_direct: true,
  preset: "trusted_private_chat",
  invite: [bob.getUserId()],
  initial_state: [{ type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }],
});
await waitFor("bob's invite", () => bob.getRoom(roomId)?.getMyMembership() === "invite");
await bob.joinRoom(roomId);
await waitFor("bob in alice's view", () => alice.getRoom(roomId)?.getJoinedMemberCount() === 2);
if (!(await alice.getCrypto().isEncryptionEnabledInRoom(roomId))) fail("the room is not encrypted");

const { event_id: sentId } = await alice.sendTextMessage(roomId, "hello from matrix-js-sdk");
await waitFor("bob decrypting alice's message", async () => (await bodies(bob, roomId)).includes("hello from matrix-js-sdk"));
const raw = await api("GET", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/event/${encodeURIComponent(sentId)}`, bobCredentials.access_token);
if (raw.type !== "m.room.encrypted" || JSON.stringify(raw).includes("hello from")) fail(`the server holds plaintext: ${JSON.stringify(raw)}`);
await bob.sendTextMessage(roomId, "hello back, encrypted");
await waitFor("alice decrypting bob's reply", async () => (await bodies(alice, roomId)).includes("hello back, encrypted"));

// Cross-signing, bootstrapped by the SDK (no password needed for a first upload).
await alice.getCrypto().bootstrapCrossSigning({
  authUploadDeviceSigningKeys: async (makeRequest) => {
    try {
      await makeRequest(null);
    } catch {
      await makeRequest({ type: "m.login.password", identifier: { type: "m.id.user", user: alice.getUserId() }, password: PASSWORD });
    }
  },
});
const status = await alice.getCrypto().getCrossSigningStatus();
if (!status.publicKeysOnDevice || !status.privateKeysCachedLocally.masterKey) fail(`cross-signing not set up: ${JSON.stringify(status)}`);
const seenByBob = await bob.getCrypto().getUserVerificationStatus(alice.getUserId());
if (!seenByBob) fail("bob cannot see alice's identity");

// A key backup made by the SDK, restored on Alice's second device.
await alice.getCrypto().resetKeyBackup();
const backupVersion = (await api("GET", "/_matrix/client/v3/room_keys/version", aliceCredentials.access_token)).version;
await waitFor("the room keys in the backup", async () => {
  const backup = await api("GET", `/_matrix/client/v3/room_keys/keys?version=${backupVersion}`, aliceCredentials.access_token);
  return Object.keys(backup.rooms?.[roomId]?.sessions ?? {}).length >= 2;
});
const backupKey = await alice.getCrypto().getSessionBackupPrivateKey();
if (!backupKey) fail("no backup key on alice's first device");

const laptopCredentials = await api("POST", "/_matrix/client/v3/login", null, {
  type: "m.login.password",
  identifier: { type: "m.id.user", user: alice.getUserId() },
  password: PASSWORD,
  initial_device_display_name: "alice's laptop",
});
const laptop = await start(laptopCredentials);
await waitFor("the room on the laptop", () => laptop.getRoom(roomId));
await laptop.getCrypto().storeSessionBackupPrivateKey(backupKey, backupVersion);
const restored = await laptop.getCrypto().restoreKeyBackup();
if (restored.imported < 2) fail(`restored ${JSON.stringify(restored)}`);
await waitFor("the laptop decrypting the history", async () => {
  const texts = await bodies(laptop, roomId);
  return texts.includes("hello from matrix-js-sdk") && texts.includes("hello back, encrypted");
});

for (const client of started) client.stopClient();
console.log("OK: encrypted DM, cross-signing and key backup restore through matrix-js-sdk");
process.exit(0);
