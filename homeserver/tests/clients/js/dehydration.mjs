// Dehydrated devices (MSC3814) through matrix-js-sdk's Rust crypto against a running hearth:
// Alice sets up cross-signing, secret storage and a dehydrated device, then logs out of her only
// device; Bob sends her an encrypted message (its room key goes to the dehydrated device);
// Alice's next login rehydrates the device with her recovery key and reads the message.
//
//     node dehydration.mjs http://127.0.0.1:8008

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
let recoveryKey;

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
    cryptoCallbacks: { getSecretStorageKey: async ({ keys }) => [Object.keys(keys)[0], recoveryKey.privateKey] },
  });
  await client.initRustCrypto({ useIndexedDB: false });
  started.push(client);
  const ready = new Promise((resolve) => client.once(sdk.ClientEvent.Sync, resolve));
  await client.startClient({ initialSyncLimit: 50 });
  await ready;
  return client;
}

async function bodies(client, roomId) {
  const room = client.getRoom(roomId);
  if (!room) return [];
  const events = room.getLiveTimeline().getEvents();
  await Promise.all(events.map((event) => client.decryptEventIfNeeded(event)));
  return events.filter((e) => e.getType() === "m.room.message").map((e) => e.getContent().body);
}

const suffix = Date.now().toString(36);
const register = (name) => api("POST", "/_matrix/client/v3/register", null, { username: name, password: PASSWORD, auth: { type: "m.login.dummy" } });
const aliceCredentials = await register(`alice${suffix}`);
const bobCredentials = await register(`bob${suffix}`);
const alice = await start(aliceCredentials);
const bob = await start(bobCredentials);

const crypto = alice.getCrypto();
if (!(await crypto.isDehydrationSupported())) fail("the server does not offer dehydrated devices");
await crypto.bootstrapCrossSigning({ authUploadDeviceSigningKeys: async (makeRequest) => makeRequest(null) });
recoveryKey = await crypto.createRecoveryKeyFromPassphrase();
await crypto.bootstrapSecretStorage({ createSecretStorageKey: async () => recoveryKey, setupNewSecretStorage: true });
await crypto.startDehydration();
const dehydrated = await api("GET", "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device", aliceCredentials.access_token);

const { room_id: roomId } = await alice.createRoom({
  is_direct: true,
  preset: "trusted_private_chat",
  invite: [bob.getUserId()],
  initial_state: [{ type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }],
});
await waitFor("bob's invite", () => bob.getRoom(roomId)?.getMyMembership() === "invite");
await bob.joinRoom(roomId);

// Alice logs out of her only device; Bob's client learns her device list changed.
alice.stopClient();
await api("POST", "/_matrix/client/v3/logout", aliceCredentials.access_token, {});
await waitFor("bob seeing only the dehydrated device", async () => {
  const devices = (await bob.getCrypto().getUserDeviceInfo([alice.getUserId()], true)).get(alice.getUserId());
  return devices && devices.size === 1 && devices.has(dehydrated.device_id);
});
await bob.sendTextMessage(roomId, "for your eyes only, while you were away");

// Alice's next login rehydrates the device and decrypts Bob's message.
const laptopCredentials = await api("POST", "/_matrix/client/v3/login", null, {
  type: "m.login.password",
  identifier: { type: "m.id.user", user: alice.getUserId() },
  password: PASSWORD,
});
const laptop = await start(laptopCredentials);
// With the recovery key, the laptop takes the cross-signing keys from secret storage (once it
// has fetched the public ones they must match).
await waitFor("the laptop seeing alice's cross-signing keys", () =>
  laptop.getCrypto().userHasCrossSigningKeys(alice.getUserId(), true));
await laptop.getCrypto().bootstrapCrossSigning({});
await laptop.getCrypto().startDehydration({ rehydrate: true });
await waitFor("the laptop decrypting what arrived while alice was away", async () =>
  (await bodies(laptop, roomId)).includes("for your eyes only, while you were away"));

for (const client of started) client.stopClient();
console.log("OK: a dehydrated device received room keys and was rehydrated through matrix-js-sdk");
process.exit(0);
